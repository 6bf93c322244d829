"""`.forgeflow.yml`: what a repository may set, and the shapes it may not use. Pure."""

from __future__ import annotations

import pytest

from policy.repo_config import RepoConfigError, load_config


def test_protected_paths_are_read() -> None:
    config = load_config("protected_paths: ['infra/*', 'db/migrations/*']\ntest:\n  command: pytest -x\n")
    assert config.protected_paths == ["infra/*", "db/migrations/*"]
    assert config.test.command == ["pytest", "-x"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &x [1]\nprotected_paths: *x\n", "aliases (*name) are not allowed"),  # a YAML bomb's building block
        ("[" * 20_000, "nested too deeply"),
        ("protected_paths: [" + "'x'," * 30_000 + "]", "larger than 64 KiB"),
        ("protected_paths: ['']\n", "is not a path pattern"),
        ('protected_paths: ["a\\x01b"]\n', "is not a path pattern"),  # a control character
        ("protected_paths: " + str([f"p{i}" for i in range(201)]) + "\n", "at most 200"),
        ("tools: [run_command]\n", "tools: Extra inputs are not permitted"),  # it can only narrow
    ],
)
def test_refused_shapes_are_named(text: str, message: str) -> None:
    with pytest.raises(RepoConfigError) as err:
        load_config(text)
    assert message in str(err.value) and ".forgeflow.yml" in str(err.value)


@pytest.mark.parametrize(
    ("text", "roles"),
    [
        ("", None),
        ("commands: true\n", None),
        ("commands: false\n", []),
        ("commands: [tester]\n", ["tester"]),
    ],
)
def test_commands_can_be_limited_to_some_roles_or_turned_off(text: str, roles: list[str] | None) -> None:
    assert load_config(text).command_roles == roles


def test_an_unknown_role_in_commands_is_named() -> None:
    with pytest.raises(RepoConfigError, match="commands"):
        load_config("commands: [deployer]\n")


def test_agent_settings_and_extra_reviewers_are_read() -> None:
    config = load_config(
        "agents:\n  reviewer:\n    instructions: Check docstrings.\n    model: claude-haiku-4-5\n    max_turns: 20\n"
        "    tools: [read_file, view_diff]\n"
        "reviewers:\n  - name: security\n    instructions: Look for injection.\n"
    )
    reviewer = config.team.agents["reviewer"]
    assert (reviewer.instructions, reviewer.model, reviewer.max_turns) == ("Check docstrings.", "claude-haiku-4-5", 20)
    assert reviewer.tools == ["read_file", "view_diff"]
    (security,) = config.team.reviewers
    assert (security.name, security.instructions) == ("security", "Look for injection.")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("agents:\n  designer: {}\n", "agents.designer"),  # a role forgeflow does not have
        ("agents:\n  coder:\n    network: true\n", "agents.coder.network: Extra inputs are not permitted"),
        ("agents:\n  coder:\n    secrets: [GITHUB_TOKEN]\n", "agents.coder.secrets: Extra inputs are not permitted"),
        ("agents:\n  coder:\n    max_turns: 900\n", "agents.coder.max_turns"),
        ("agents:\n  coder:\n    model: gpt-4\n", "agents.coder.model"),
        ("agents:\n  coder:\n    instructions: '" + "x" * 5000 + "'\n", "agents.coder.instructions"),
        ("reviewers:\n  - name: Security Team\n", "reviewers.0.name"),
        ("reviewers:\n  - name: a\n  - name: a\n", "reviewer names must differ"),
        ("reviewers: " + str([{"name": f"r{i}"} for i in range(5)]) + "\n", "reviewers: List should have at most 4"),
    ],
)
def test_agent_settings_that_are_not_allowed_are_named(text: str, message: str) -> None:
    with pytest.raises(RepoConfigError) as err:
        load_config(text)
    assert message in str(err.value)
