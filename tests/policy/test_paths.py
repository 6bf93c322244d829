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
    ],
)
def test_accepted(raw: str, clean: str) -> None:
    assert repo_path(raw) == clean


@pytest.mark.parametrize("raw", ["", "/etc/passwd", "../x", "a/../../x", ".git/config", "./.git/hooks/pre-commit", "."])
def test_refused(raw: str) -> None:
    with pytest.raises(UnsafePathError):
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
