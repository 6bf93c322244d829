"""What defines a role: its prompt, tools, result model and turn budget, in one place."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from contracts.agents import DEFAULT_MAX_TURNS, Role
from roles.tools import DEFINITIONS, ToolDef, submit_tool


@dataclass(frozen=True)
class RoleSpec:
    name: Role
    system_prompt: str
    tool_names: tuple[str, ...]
    result_model: type[BaseModel]
    submit_description: str
    max_turns: int = DEFAULT_MAX_TURNS  # the run's budgets.max_turns_per_agent caps it further
    model: str | None = None  # None: the run's model (IssueInput.model)

    def tools(self) -> list[ToolDef]:
        """Tool definitions in a fixed order, so the prompt prefix is byte-stable across turns."""
        defs = [DEFINITIONS[name] for name in self.tool_names]
        return [*defs, submit_tool(self.result_model, self.submit_description)]
