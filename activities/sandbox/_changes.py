"""What a sandboxed command changed in its workspace: two walks of it, compared.

Before the command the worker records each entry of the workspace: its kind and, for a regular
file, its inode, size, modification and status-change times; for a link, its target. After the
command it walks again. A file whose record is unchanged was not written: the status-change time
moves with every write, and no process can set it back. A file whose record moved is a candidate;
the caller reads it and compares contents, so a file rewritten with the same bytes is no change.

The workspace is untrusted (sandboxed code shaped it): the walks never follow a link, and what they
find is only ever read through activities.sandbox._safefs. The decisions on the records are pure.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

import pathspec

from activities.sandbox import _safefs
from policy.paths import UnsafePathError, repo_path

ALWAYS_SKIPPED = frozenset({".git"})  # git's own folders: never part of a change (git ignores them too)
GITIGNORE = ".gitignore"


@dataclass(frozen=True)
class Record:
    """One entry as a walk saw it."""

    kind: Literal["file", "link", "other"]
    stamp: tuple[int, ...] = ()  # a file's (inode, size, mtime_ns, ctime_ns); a link's target, encoded


Snapshot = dict[str, Record]  # relative path → record (folders are not entries)


def snapshot(top: Path, skip: frozenset[str] = ALWAYS_SKIPPED) -> Snapshot:
    """Every entry under `top` but folders, without following links; folders named in `skip` are not
    entered (.git: git's own). Blocking."""
    return walk(top, skip)[0]


Folders = dict[str, int]  # relative path → permission bits


def walk(top: Path, skip: frozenset[str] = frozenset()) -> tuple[Snapshot, Folders]:
    """Every entry under `top`, and every folder with its permission bits, without following links;
    folders named in `skip` are left out. For a tree nothing writes meanwhile: the sandbox that shaped
    it has ended. Blocking."""
    found: Snapshot = {}
    folders: Folders = {}
    for path, entry in _safefs.entries(top, skip, folders=True):
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            folders[path] = stat.S_IMODE(info.st_mode)
        elif stat.S_ISREG(info.st_mode):
            found[path] = Record("file", (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns))
        elif stat.S_ISLNK(info.st_mode):
            found[path] = Record("link", tuple(os.readlink(entry.path).encode("utf-8", "surrogateescape")))
        else:
            found[path] = Record("other")  # a FIFO, socket or device the command made
    return found, folders


@dataclass
class Diff:
    """The entries that moved between two walks, before contents are compared."""

    written: list[str] = field(default_factory=list)  # regular files after, new or with a moved record
    deleted: list[str] = field(default_factory=list)  # files or links before, gone after
    not_kept: dict[str, str] = field(default_factory=dict)  # path → why it cannot come back as an edit


def compare(before: Snapshot, after: Snapshot) -> Diff:
    """What moved from `before` to `after`. Pure."""
    diff = Diff()
    for path in sorted(before.keys() | after.keys()):
        old, new = before.get(path), after.get(path)
        if new == old:
            continue
        if new is None:
            diff.deleted.append(path)
        elif new.kind == "file":
            diff.written.append(path)
        elif new.kind == "link":
            diff.not_kept[path] = "a symbolic link: edits hold file contents only, so links are not kept"
        else:
            diff.not_kept[path] = "not a regular file (a pipe, socket or device)"
    return diff


class Ignored:
    """The repository's .gitignore files as git reads them: a deeper file's rules win over a
    shallower one's, and within a file the last matching rule (a `!rule` re-includes)."""

    def __init__(self, files: Mapping[str, str]) -> None:
        """`files`: each .gitignore's path → its text."""
        self._specs = sorted(
            ((str(PurePosixPath(path).parent), pathspec.GitIgnoreSpec.from_lines(text.splitlines()))
             for path, text in files.items()),
            key=lambda pair: -len(PurePosixPath(pair[0]).parts) if pair[0] != "." else 0,
        )  # fmt: skip

    def __call__(self, path: str) -> bool:
        for folder, spec in self._specs:  # deepest first
            if folder != "." and not path.startswith(f"{folder}/"):
                continue
            relative = path if folder == "." else path[len(folder) + 1 :]
            decided = spec.check_file(relative).include
            if decided is not None:
                return decided
        return False


def gitignore_files(paths: Iterable[str]) -> list[str]:
    return sorted(p for p in paths if PurePosixPath(p).name == GITIGNORE)


@dataclass(frozen=True)
class KeepRules:
    """Which changes may come back as edits."""

    tracked: frozenset[str]  # paths the workspace held before the command (commit, edits, install)
    install_owned: frozenset[str]  # of those, what the install step made or changed
    install_dirs: frozenset[str]  # folders the install step made: nothing new under them is kept
    ignored: Callable[[str], bool]  # a new file git would ignore
    tests_only: Callable[[str], bool] | None = None  # only these may change (the tester's test files)


def new_folders(made: Iterable[str], earlier: Iterable[str]) -> frozenset[str]:
    """The folders holding `made` files that held none of the `earlier` ones: the outermost such
    folder of each (a folder the install step created, such as `src/pkg.egg-info`). Pure."""
    existing = {str(parent) for path in earlier for parent in PurePosixPath(path).parents}
    found = set()
    for path in made:
        new = [str(p) for p in PurePosixPath(path).parents if str(p) != "." and str(p) not in existing]
        if new:
            found.add(new[-1])  # parents run innermost first: the last is the outermost new folder
    return frozenset(found)


def why_not_kept(path: str, rules: KeepRules) -> str | None:
    """None if a change to `path` comes back as an edit, else why not. Pure."""
    try:
        repo_path(path)
    except UnsafePathError as err:
        return f"not a path an edit can hold: {err}"
    if path in rules.install_owned or any(path.startswith(f"{folder}/") for folder in rules.install_dirs):
        return "the install step made it"
    if path not in rules.tracked and rules.ignored(path):
        return "ignored by .gitignore"
    if rules.tests_only is not None and not rules.tests_only(path):
        return "the tester keeps changes to test files only"
    return None
