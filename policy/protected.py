"""Paths whose changes need a human's approval before they are committed. Pure.

CI and workflow definitions can run code with the repository's secrets; CODEOWNERS decides who
reviews; files that look like credentials should never be written by an agent unseen.
"""

from __future__ import annotations

from fnmatch import fnmatch

DEFAULT_PROTECTED = (
    ".github/workflows/*",
    ".github/actions/*",
    ".gitlab-ci.yml",
    ".circleci/*",
    "Jenkinsfile",
    ".ci/*",
    "CODEOWNERS",
    ".github/CODEOWNERS",
    "docs/CODEOWNERS",
    ".forgeflow.yml",  # decides the sandbox's install and test commands
)
_SECRET_NAMES = (
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "id_rsa*",
    "id_ed25519*",
    ".npmrc",
    ".pypirc",
    ".netrc",
)
_SECRET_WORDS = ("secret", "credential", "password", "token")


def looks_secret(path: str) -> bool:
    name = path.rsplit("/", 1)[-1].lower()
    return any(fnmatch(name, pattern) for pattern in _SECRET_NAMES) or any(w in name for w in _SECRET_WORDS)


def protected_paths(paths: list[str], extra_patterns: tuple[str, ...] = ()) -> list[str]:
    """The paths among `paths` that need approval, sorted. Patterns match the whole path; `*` spans folders."""
    patterns = (*DEFAULT_PROTECTED, *extra_patterns)
    return sorted(p for p in paths if looks_secret(p) or any(fnmatch(p, pattern) for pattern in patterns))
