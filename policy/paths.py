"""Where agents may write: inside the repository, never into .git. Pure."""

from __future__ import annotations

from pathlib import PurePosixPath


class UnsafePathError(ValueError):
    """A path that would leave the repository or touch git's own files."""


def repo_path(raw: str) -> str:
    """Normalise a model-supplied path to a clean repository-relative one, or raise UnsafePathError."""
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
    if parts[0] == ".git":
        raise UnsafePathError(f"{raw!r} is inside .git")
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
