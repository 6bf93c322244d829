"""Paths whose changes need a human's approval before they are committed. Pure.

CI and workflow definitions, of every CI system a repository might use, can run code with the
repository's secrets; hook managers, dev containers, dependency bots and submodules change what runs
on people's machines or what gets fetched; CODEOWNERS decides who reviews; files that look like
credentials should never be written by an agent unseen. Matching ignores case, because a checkout
on a case-insensitive filesystem treats `.GitHub/Workflows` as `.github/workflows`.
"""

from __future__ import annotations

from fnmatch import fnmatch

DEFAULT_PROTECTED = (
    # CI systems
    ".github/workflows/*",
    ".github/actions/*",
    ".gitlab-ci.yml",
    ".gitlab/*",
    ".circleci/*",
    "Jenkinsfile",
    "Jenkinsfile.*",
    "*/Jenkinsfile",
    "azure-pipelines.yml",
    "azure-pipelines*.yml",
    ".azure-pipelines/*",
    ".travis.yml",
    "bitbucket-pipelines.yml",
    ".drone.yml",
    ".woodpecker.yml",
    ".woodpecker/*",
    ".buildkite/*",
    "appveyor.yml",
    ".appveyor.yml",
    ".cirrus.yml",
    "cloudbuild.yaml",
    "cloudbuild.yml",
    ".ci/*",
    # what runs on people's machines or in bots with write access
    ".pre-commit-config.yaml",
    ".pre-commit-hooks.yaml",
    ".husky/*",
    ".devcontainer/*",
    ".github/dependabot.yml",
    ".github/dependabot.yaml",
    "renovate.json",
    ".github/renovate.json",
    ".gitmodules",  # which repositories a checkout fetches
    # who reviews
    "CODEOWNERS",
    ".github/CODEOWNERS",
    "docs/CODEOWNERS",
    # forgeflow's own
    ".forgeflow.yml",  # the sandbox's install and test commands, and more protected paths
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
    """The paths among `paths` that need approval, sorted. Patterns match the whole path, ignoring
    case; `*` spans folders. `extra_patterns` (the run's and the repository's) only add protection."""
    patterns = [pattern.lower() for pattern in (*DEFAULT_PROTECTED, *extra_patterns)]
    return sorted(p for p in paths if looks_secret(p) or any(fnmatch(p.lower(), pattern) for pattern in patterns))
