"""Who may run sandboxed commands: the run's option, narrowed by the repository."""

from __future__ import annotations

import pytest

from policy.commands import command_access

CODER = {"by_default": True, "keeps_changes": True}
REVIEWER = {"by_default": False, "keeps_changes": False}


@pytest.mark.parametrize(
    ("role", "own", "run_roles", "repo_roles", "access"),
    [
        ("coder", CODER, None, None, "write"),  # the default
        ("reviewer", REVIEWER, None, None, "off"),  # off by default
        ("reviewer", REVIEWER, ["coder", "reviewer"], None, "read_only"),  # on: read-only
        ("coder", CODER, [], None, "off"),  # the run turns commands off
        ("coder", CODER, ["tester"], None, "off"),
        ("coder", CODER, None, [], "off"),  # the repository turns them off
        ("coder", CODER, None, ["tester"], "off"),
        ("coder", CODER, None, ["coder"], "write"),
        # The repository only narrows: naming a role the run did not turn on does not turn it on.
        ("reviewer", REVIEWER, None, ["reviewer"], "off"),
        ("reviewer", REVIEWER, ["reviewer"], ["coder"], "off"),
    ],
)
def test_access(
    role: str, own: dict[str, bool], run_roles: list[str] | None, repo_roles: list[str] | None, access: str
) -> None:
    assert command_access(role, **own, run_roles=run_roles, repo_roles=repo_roles) == access
