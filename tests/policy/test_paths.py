from __future__ import annotations

import pytest

from policy.paths import UnsafePathError, is_test_path, repo_path


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("src/a.py", "src/a.py"),
        ("./src//a.py", "src/a.py"),
        ("a\\b.py", "a/b.py"),
        (".github/x.yml", ".github/x.yml"),
        (".gitignore", ".gitignore"),
        (".gitmodules", ".gitmodules"),  # allowed here; the protected-path gate decides
        ("docs/.github.md", "docs/.github.md"),
        ("é/ünïcode.py", "é/ünïcode.py"),
        ("a" * 255, "a" * 255),
    ],
)
def test_accepted(raw: str, clean: str) -> None:
    assert repo_path(raw) == clean


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("../x", "leaves"),
        ("a/../../x", "leaves"),
        (".", "root"),
        (".git/config", ".git"),
        ("./.git/hooks/pre-commit", ".git"),
        ("sub/.git/config", ".git"),  # a nested repository's git directory
        (".GIT/config", ".git"),  # case-insensitive filesystems
        (".Git/hooks/x", ".git"),
        (".git./x", ".git"),  # NTFS drops trailing dots: GitHub drops the file silently
        (".git /x", ".git"),  # ... and trailing spaces
        ("git~1/config", ".git"),  # the 8.3 short name of .git
        (".g\u200cit/config", ".git"),  # HFS+ ignores U+200C
        ("a\x00b.py", "U+0000"),
        ("a\nb.py", "U+000A"),
        ("a\x1bb.py", "U+001B"),
        ("a\x7fb.py", "U+007F"),
        ("a" * 256, "longer than 255"),
        ("a/" * 2100 + "b", "longer than 4096"),
    ],
)
def test_refused(raw: str, why: str) -> None:
    with pytest.raises(UnsafePathError, match=why.replace(".", "\\.").replace("+", "\\+")):
        repo_path(raw)


@pytest.mark.parametrize(
    ("path", "is_test"),
    [
        ("tests/test_x.py", True),
        ("pkg/tests/helpers.py", True),
        ("test_x.py", True),
        ("conftest.py", True),
        ("src/app_test.go", True),
        ("web/app.test.js", True),
        ("web/__tests__/app.js", True),
        ("src/app.py", False),
        ("src/testing_utils.py", False),
        (".github/workflows/ci.yml", False),
    ],
)
def test_is_test_path(path: str, is_test: bool) -> None:
    assert is_test_path(path) is is_test
