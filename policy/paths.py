"""Where agents may write: inside the repository, never into .git. Pure.

A path from a model is checked once, here, at the tool boundary; what passes is a clean
repository-relative path that every code host and the sandbox can store exactly as given. The
rules follow git's own `verify_path` with core.protectNTFS and core.protectHFS: a `.git` component
in any spelling that some filesystem or host treats as `.git` (any case, trailing dots or spaces,
the 8.3 short name `git~1`, HFS+'s ignored code points) is refused, because a host may drop such a
file from the commit without an error or, worse, a checkout may treat it as git's own directory.
"""

from __future__ import annotations

import unicodedata
from pathlib import PurePosixPath

MAX_PATH_BYTES = 4096  # PATH_MAX
MAX_NAME_BYTES = 255  # NAME_MAX on every filesystem we write to
# Code points HFS+ ignores when comparing names (git's is_hfs_dotgit list).
_HFS_IGNORED = frozenset(
    "\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u206a\u206b\u206c\u206d\u206e\u206f\ufeff"
)


class UnsafePathError(ValueError):
    """A path that would leave the repository, touch git's own files, or that no host stores faithfully."""


def is_dotgit(name: str) -> bool:
    """True for a path component that some filesystem or host takes for `.git`."""
    folded = "".join(ch for ch in name if ch not in _HFS_IGNORED).rstrip(". ").lower()
    return folded in (".git", "git~1")


def control_character(text: str) -> str | None:
    """The first control character in `text` (NUL, newline, escape, DEL, …), if any."""
    return next((ch for ch in text if unicodedata.category(ch) == "Cc"), None)


def _check_characters(raw: str) -> None:
    bad = control_character(raw)
    if bad is not None:
        raise UnsafePathError(f"{raw!r} contains the control character U+{ord(bad):04X}; paths are printable text only")
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise UnsafePathError(f"path is longer than {MAX_PATH_BYTES} bytes")


def repo_path(raw: str) -> str:
    """Normalise a model-supplied path to a clean repository-relative one, or raise UnsafePathError."""
    _check_characters(raw)
    text = raw.strip().replace("\\", "/")
    if not text:
        raise UnsafePathError("empty path")
    path = PurePosixPath(text)
    if path.is_absolute():
        raise UnsafePathError(f"{raw!r} is absolute; give a path relative to the repository root")
    parts = [p for p in path.parts if p not in ("", ".")]
    if ".." in parts:
        raise UnsafePathError(f"{raw!r} leaves the repository")
    if not parts:
        raise UnsafePathError(f"{raw!r} names the repository root, not a file")
    for part in parts:
        if is_dotgit(part):
            raise UnsafePathError(f"{raw!r} is inside .git (or a name some filesystem reads as .git: {part!r})")
        if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            raise UnsafePathError(f"{raw!r} has a component longer than {MAX_NAME_BYTES} bytes")
    return "/".join(parts)


_TEST_DIRS = frozenset({"tests", "test", "__tests__", "spec", "testing"})


def is_test_path(path: str) -> bool:
    """A file the tester may write: under a tests folder, or named like a test (test_x.py, x_test.go, x.test.js)."""
    parts = path.split("/")
    name = parts[-1]
    stem = name.rsplit(".", 1)[0]
    return (
        any(part in _TEST_DIRS for part in parts[:-1])
        or name == "conftest.py"
        or stem.startswith("test_")
        or stem.endswith(("_test", ".test", ".spec"))
    )
