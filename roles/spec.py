"""What defines a role: its prompt, tools, result model and turn budget, and how a run runs it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from contracts.agents import DEFAULT_MAX_TURNS, Role
from roles.tools import DEFINITIONS, ToolDef, submit_tool

# What the run does with a role's submission (workflows/_steps.py has one behaviour per kind):
# record the plan, commit the change, commit the tests and judge the report, post the review.
# Two roles may share a kind (a second reviewer reuses "review").
StepKind = Literal["plan", "change", "tests", "review"]


@dataclass(frozen=True)
class RoleSpec:
    name: Role
    system_prompt: str
    tool_names: tuple[str, ...]
    result_model: type[BaseModel]
    submit_description: str
    step: StepKind  # which step consumes the submission
    # The run's stage while the role works: the ForgeflowStage search attribute and the `state`
    # query's value, so never rename one after a run has used it.
    stage: str
    tests_only: bool = False  # its write tools may only write test files (tests/…, test_*.py, *.test.js, …)
    max_turns: int = DEFAULT_MAX_TURNS  # the run's budgets.max_turns_per_agent caps it further
    model: str | None = None  # None: the run's model (IssueInput.model)
    # Sandboxed commands: the tools the role has only when the run lets it run commands (run_command; the
    # coder's run_tests), whether it has them unless the run says otherwise, whether what they change is
    # kept (else they run read-only), and what the prompt adds when the role has them. A run recorded
    # before commands existed has them off (AgentInput.commands), so it replays with the tools it had.
    command_tools: tuple[str, ...] = ()
    commands_by_default: bool = False
    keeps_command_changes: bool = False
    command_prompt: str = ""

    def tools(self, commands: bool = False) -> list[ToolDef]:
        """Tool definitions in a fixed order, so the prompt prefix is byte-stable across turns; the
        command tools only when the run lets this role run commands."""
        names = [*self.tool_names, *self.command_tools] if commands else self.tool_names
        defs = [DEFINITIONS[name] for name in names]
        return [*defs, submit_tool(self.result_model, self.submit_description)]

    def system(self, commands: bool = False) -> str:
        return (
            f"{self.system_prompt}\n{self.command_prompt}" if commands and self.command_prompt else self.system_prompt
        )

    @property
    def all_tools(self) -> tuple[str, ...]:
        """Every tool the role can have: its own, and its command tools (when a run allows commands)."""
        return (*self.tool_names, *self.command_tools)

    def has_tool(self, name: str, commands: bool) -> bool:
        return name in self.tool_names or (commands and name in self.command_tools)
