from __future__ import annotations

import pytest

from policy.protected import protected_paths


@pytest.mark.parametrize(
    ("path", "protected"),
    [
        (".github/workflows/ci.yml", True),
        (".github/workflows/nested/x.yaml", True),
        (".github/actions/setup/action.yml", True),
        (".ci/run", True),
        ("CODEOWNERS", True),
        (".github/CODEOWNERS", True),
        (".forgeflow.yml", True),  # the sandbox's install and test commands
        ("sub/.forgeflow.yml", False),  # only the root file is read
        (".env", True),
        ("config/.env.production", True),
        ("deploy/server.pem", True),
        ("secrets.yaml", True),
        ("app/credentials.json", True),
        ("src/app.py", False),
        ("README.md", False),
        (".github/ISSUE_TEMPLATE/bug.md", False),
        # what changes what runs or who reviews, in every CI system's spelling
        (".gitmodules", True),
        (".github/dependabot.yml", True),
        (".pre-commit-config.yaml", True),
        (".gitlab-ci.yml", True),
        (".gitlab/ci/build.yml", True),
        (".circleci/config.yml", True),
        ("Jenkinsfile", True),
        ("ci/Jenkinsfile", True),
        ("azure-pipelines.yml", True),
        (".travis.yml", True),
        ("bitbucket-pipelines.yml", True),
        (".buildkite/pipeline.yml", True),
        (".husky/pre-commit", True),
        (".devcontainer/devcontainer.json", True),
        # case-insensitive filesystems see these as the protected ones
        (".GitHub/Workflows/ci.yml", True),
        ("codeowners", True),
        (".GITMODULES", True),
        ("src/jenkins_helper.py", False),
        ("docs/travis.md", False),
        ("docs/environment.md", False),
    ],
)
def test_protected(path: str, protected: bool) -> None:
    assert (protected_paths([path]) == [path]) is protected


def test_extra_patterns_and_order() -> None:
    assert protected_paths(["b/infra.tf", "a.py", ".env"], ("*.tf",)) == [".env", "b/infra.tf"]
