"""A repository's agent settings narrow and never widen: one line per case."""

from __future__ import annotations

import pytest

from contracts.team import AgentSettings
from policy.agent_settings import Resolved, resolve, turn_cap

REVIEWER_TOOLS = ("read_file", "list_files", "search", "view_diff")


@pytest.mark.parametrize(
    ("asked", "tools", "refused"),
    [
        (None, None, None),
        (["read_file", "view_diff"], ["read_file", "view_diff"], None),
        (["view_diff", "read_file"], ["read_file", "view_diff"], None),  # the role's order: a stable prompt
        (["read_file", "submit"], ["read_file"], None),  # submit is always there
        ([], [], None),
        (["read_file", "write_file"], ["read_file"], "refused write_file: not a reviewer tool"),
        (["run_command", "run_command"], [], "refused run_command: not a reviewer tool"),
    ],
)
def test_tools_only_narrow(asked: list[str] | None, tools: list[str] | None, refused: str | None) -> None:
    found = resolve("agents.reviewer", "reviewer", REVIEWER_TOOLS, AgentSettings(tools=asked))
    assert found.tools == tools
    if refused is None:
        assert found.refused == []
    else:
        (line,) = found.refused
        assert line.startswith("agents.reviewer.tools: ") and refused in line


def test_no_settings_change_nothing() -> None:
    assert resolve("agents.coder", "coder", ("read_file",), None) == Resolved()


def test_guidance_model_and_turns_pass_through() -> None:
    settings = AgentSettings(instructions="  Check docstrings.  ", model="claude-haiku-4-5", max_turns=5)
    found = resolve("reviewers.security", "reviewer", REVIEWER_TOOLS, settings)
    assert (found.instructions, found.model, found.max_turns) == ("Check docstrings.", "claude-haiku-4-5", 5)
    assert resolve("agents.coder", "coder", (), AgentSettings(instructions="   ")).instructions is None


@pytest.mark.parametrize(("role", "run", "repo", "expected"), [(40, 30, None, 30), (40, 30, 10, 10), (40, 50, 45, 40)])
def test_turn_caps_only_lower(role: int, run: int, repo: int | None, expected: int) -> None:
    assert turn_cap(role, run, repo) == expected
