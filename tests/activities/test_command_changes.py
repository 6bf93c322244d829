"""How a command's changes are found and judged: walks compared, then rules — tables, no sandbox."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from activities.sandbox._changes import Ignored, KeepRules, Record, compare, new_folders, snapshot, why_not_kept
from policy.paths import is_test_path

FILE = Record("file", (1, 2, 3, 4))
FILE_WRITTEN = Record("file", (1, 3, 5, 6))
LINK = Record("link", tuple(b"target"))


def test_compare_sorts_what_moved() -> None:
    before = {"same": FILE, "written": FILE, "gone": FILE, "link-gone": LINK, "to-link": FILE}
    after = {"same": FILE, "written": FILE_WRITTEN, "new": FILE, "new-link": LINK, "to-link": LINK}
    after["fifo"] = Record("other")
    diff = compare(before, after)
    assert diff.written == ["new", "written"]
    assert diff.deleted == ["gone", "link-gone"]
    assert set(diff.not_kept) == {"new-link", "to-link", "fifo"}


def test_snapshot_sees_writes_and_never_follows_links(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f.txt").write_text("a")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref")
    os.symlink("/etc", tmp_path / "out")
    first = snapshot(tmp_path)
    assert set(first) == {"d/f.txt", "out"} and first["out"].kind == "link"
    (tmp_path / "d" / "f.txt").write_text("a")  # the same bytes, written again: the record moves
    assert snapshot(tmp_path)["d/f.txt"] != first["d/f.txt"]


IGNORES = Ignored({".gitignore": "build/\n*.log\n!keep.log\n", "sub/.gitignore": "*.tmp\n!root.log\n"})


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        ("build/x.o", True),
        ("src/build/x.o", True),
        ("a.log", True),
        ("keep.log", False),
        ("src/main.py", False),
        ("sub/x.tmp", True),
        ("x.tmp", False),  # sub/.gitignore speaks only for sub/
        ("sub/root.log", False),  # the deeper file re-includes it
    ],
)
def test_gitignore_rules(path: str, ignored: bool) -> None:
    assert IGNORES(path) is ignored


def rules(**overrides: object) -> KeepRules:
    values: dict[str, object] = {
        "tracked": frozenset({"build/tracked.o", "src/a.py"}),
        "install_owned": frozenset({"pkg.egg-info/PKG-INFO", "made.txt"}),
        "install_dirs": frozenset({"pkg.egg-info"}),
        "ignored": IGNORES,
    }
    return KeepRules(**(values | overrides))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("src/a.py", None),
        ("src/new.py", None),
        ("build/new.o", "ignored by .gitignore"),
        ("build/tracked.o", None),  # git ignores only untracked files
        ("made.txt", "the install step made it"),
        ("pkg.egg-info/extra", "the install step made it"),
        ("bad\nname", "not a path an edit can hold"),
    ],
)
def test_what_is_kept(path: str, why: str | None) -> None:
    found = why_not_kept(path, rules())
    assert (found if found is None else found[: len(why or "")]) == why


def test_the_tester_keeps_test_files_only() -> None:
    tester = rules(tests_only=is_test_path)
    assert why_not_kept("tests/test_a.py", tester) is None
    assert why_not_kept("src/a.py", tester) == "the tester keeps changes to test files only"


def test_new_folders_are_the_outermost_ones_the_install_made() -> None:
    made = ["src/pkg.egg-info/PKG-INFO", "src/pkg.egg-info/SOURCES.txt", "build/lib/x.py", "top.txt"]
    assert new_folders(made, ["src/pkg/__init__.py", "README"]) == {"src/pkg.egg-info", "build"}
