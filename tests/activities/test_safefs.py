"""activities.sandbox._safefs on real trees: no read, write or delete goes through a link."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from activities.sandbox import _safefs


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A workspace with a host file and folder outside it, and links to both inside it."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret.txt").write_text("host secret\n")
    top = tmp_path / "ws"
    (top / "sub").mkdir(parents=True)
    (top / "sub" / "ok.txt").write_text("inside\n")
    os.symlink(host / "secret.txt", top / "filelink")
    os.symlink(host, top / "dirlink")
    os.mkfifo(top / "fifo")
    return top


def test_reads_take_regular_files_only_and_bound_them(tree: Path) -> None:
    with _safefs.root(tree) as fd:
        found = _safefs.read_file(fd, "sub/ok.txt", 3)
        assert found is not None and (found.data, found.size, found.truncated) == (b"ins", 7, True)
        for path in ("filelink", "dirlink/secret.txt", "fifo", "sub", "missing", "sub/ok.txt/x"):
            assert _safefs.read_file(fd, path, 100) is None, path


def test_writes_replace_a_link_and_never_go_through_one(tree: Path) -> None:
    host = tree.parent / "host"
    with _safefs.root(tree) as fd:
        _safefs.write_file(fd, "filelink", b"a file now\n")
        _safefs.write_file(fd, "new/deep/file.txt", b"made\n")
        with pytest.raises(_safefs.UnsafeTreeError):
            _safefs.write_file(fd, "dirlink/planted.txt", b"x")
        with pytest.raises(_safefs.UnsafeTreeError):
            _safefs.delete(fd, "dirlink/secret.txt")
        _safefs.delete(fd, "sub/ok.txt")
        _safefs.delete(fd, "missing.txt")
    assert (tree / "filelink").read_text() == "a file now\n" and not (tree / "filelink").is_symlink()
    assert (tree / "new" / "deep" / "file.txt").read_text() == "made\n"
    assert sorted(p.name for p in host.iterdir()) == ["secret.txt"]
    assert (host / "secret.txt").read_text() == "host secret\n" and not (tree / "sub" / "ok.txt").exists()


def test_listing_follows_no_link(tree: Path) -> None:
    assert _safefs.regular_files(tree) == ["sub/ok.txt"]
    assert set(_safefs.links(tree)) == {"filelink", "dirlink"}


@pytest.mark.parametrize(
    ("links", "escapes"),
    [
        ({"a": "b"}, False),
        ({"a": "sub/../b"}, False),
        ({"a": "../outside"}, True),
        ({"sub/a": "../b"}, False),
        ({"sub/a": "../../b"}, True),
        ({"a": "/etc"}, True),
        ({"a": "/mnt/cache/bin"}, False),  # absolute, but naming the cache's own mount point
        ({"a": "/mnt/cache/../x"}, True),
        ({"l": ".", "a": "l/.."}, True),  # each alone stays inside; followed together they climb out
        ({"l": "sub", "sub/up": "../..", "a": "l/x"}, False),  # a escapes only through sub/up, not here
        ({"a": "b", "b": "a"}, True),  # a loop is refused, as the kernel would after 40 hops
    ],
)
def test_link_escapes_resolves_chains_without_following_them(
    tmp_path: Path, links: dict[str, str], escapes: bool
) -> None:
    top = tmp_path / "cache"
    (top / "sub").mkdir(parents=True)
    for path, target in links.items():
        os.symlink(target, top / path)
    checked = "a" if "a" in links else "sub/a"
    assert _safefs.link_escapes(top, checked, "/mnt/cache") is escapes
