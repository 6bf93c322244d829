from __future__ import annotations

import pytest

from policy.paths import UnsafePathError, repo_path


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
