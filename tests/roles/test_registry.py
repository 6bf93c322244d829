"""The role registry and the role names the contracts use are one list."""

from typing import get_args

import pytest
from pydantic import ValidationError

from contracts.agents import ROLE_NAMES, Role
from contracts.run import IssueInput, OrchestrationState, Stage
from policy.routing import END, START, successors
from roles import ROLES, spec_of
from roles.tools import DEFINITIONS


def test_registry_covers_exactly_the_contract_role_names() -> None:
    assert tuple(ROLES) == ROLE_NAMES == get_args(Role)


def test_each_role_is_registered_under_its_own_name() -> None:
    assert all(name == spec.name for name, spec in ROLES.items())


def test_every_role_tool_is_defined() -> None:
    assert all(name in DEFINITIONS for spec in ROLES.values() for name in [*spec.tool_names, *spec.command_tools])


def _names(role: str, commands: bool) -> list[str]:
    return [tool["name"] for tool in ROLES[role].tools(commands)]  # type: ignore[index]


def test_command_tools_come_only_with_commands() -> None:
    """A run without commands (or recorded before them) has the tools it always had."""
    assert "run_command" not in _names("coder", False) and "run_tests" not in _names("coder", False)
    assert _names("coder", True)[-3:] == ["run_tests", "run_command", "submit"]
    assert "run_tests" in _names("tester", False)  # the tester's own duty, whatever the run says of commands
    assert all("run_command" in _names(role, True) for role in ROLES)
    assert ROLES["coder"].system(True).endswith(ROLES["coder"].command_prompt)
    assert "run_command" not in ROLES["coder"].system(False)
    assert [role for role, spec in ROLES.items() if spec.commands_by_default] == ["coder", "tester"]
    assert [role for role, spec in ROLES.items() if spec.keeps_command_changes] == ["coder", "tester"]


def test_per_agent_models_accept_every_role_and_nothing_else() -> None:
    models = {name: "m" for name in ROLES}
    assert IssueInput(repo="/tmp/r", spec_content="s", models=models).models == models
    with pytest.raises(ValidationError, match=r"models\.designer"):
        IssueInput.model_validate({"repo": "/tmp/r", "spec_content": "s", "models": {"designer": "m"}})


def test_the_first_four_roles_keep_their_stage_names_and_step_kinds() -> None:
    """Stage names are search-attribute values and query output: they never change."""
    expected = {
        "planner": ("planning", "plan"),
        "coder": ("coding", "change"),
        "tester": ("testing", "tests"),
        "reviewer": ("reviewing", "review"),
    }
    assert {name: (spec.stage, spec.step) for name, spec in ROLES.items()} == expected
    assert not {spec.stage for spec in ROLES.values()} & set(Stage)  # never one of the run's own


def test_a_new_roles_stage_needs_no_new_member() -> None:
    state = OrchestrationState(repo="/tmp/r", mode="autonomous", stage="designing")
    assert state.model_dump(mode="json")["stage"] == "designing"
    assert OrchestrationState.model_validate_json(state.model_dump_json()).stage == "designing"
    started = OrchestrationState(repo="/tmp/r", mode="autonomous")
    assert started.model_dump(mode="json")["stage"] == "starting" and started.stage == Stage.STARTING


def test_the_routing_table_names_only_registered_roles_and_reaches_every_one() -> None:
    graph = successors()
    named = {step for nexts in graph.values() for step in nexts} - {END}
    assert named <= set(ROLES) and set(graph) - {START} <= set(ROLES)
    reached, frontier = set(), [START]
    while frontier:
        for step in graph.get(frontier.pop(), set()) - reached:
            reached.add(step)
            frontier.append(step)
    assert set(ROLES) <= reached


def test_spec_of_finds_a_role_by_its_routing_name() -> None:
    assert spec_of("tester") is ROLES["tester"]
    with pytest.raises(KeyError, match="designer"):
        spec_of("designer")
