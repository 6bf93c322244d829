"""What of a repository's agent settings (`.forgeflow.yml` `agents:` and `reviewers:`) stands. Pure.

A repository can only narrow: a tool it names that the role does not have is refused (the rest of the
list stands, so the role has less, never more), a turn cap only lowers the role's, and guidance is
added to the built-in prompt as the repository's, never in place of it. Each refusal is a line for
the run's log that names the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from contracts.team import AgentSettings

ALWAYS = ("submit",)  # every agent can hand in its result, whatever its tools


@dataclass(frozen=True)
class Resolved:
    """One agent's settings after narrowing."""

    instructions: str | None = None
    model: str | None = None
    max_turns: int | None = None
    tools: list[str] | None = None  # None: every tool the role has
    refused: list[str] = field(default_factory=list)


def resolve(key: str, role: str, role_tools: Sequence[str], settings: AgentSettings | None) -> Resolved:
    """`settings` (at `key` in the file, e.g. agents.reviewer) for `role`, whose tools are `role_tools`."""
    if settings is None:
        return Resolved()
    refused: list[str] = []
    tools: list[str] | None = None
    if settings.tools is not None:
        asked = [name for name in settings.tools if name not in ALWAYS]
        foreign = [name for name in dict.fromkeys(asked) if name not in role_tools]
        if foreign:
            refused.append(
                f"{key}.tools: refused {', '.join(foreign)}: not a {role} tool, and a repository can only "
                f"narrow a role's tools ({', '.join(role_tools)})"
            )
        tools = [name for name in role_tools if name in asked]
    instructions = settings.instructions.strip() if settings.instructions else None
    return Resolved(instructions or None, settings.model, settings.max_turns, tools, refused)


def turn_cap(role_cap: int, run_cap: int, repo_cap: int | None) -> int:
    """The agent's turns: the role's, the run's and the repository's, whichever is lowest."""
    return min(role_cap, run_cap, repo_cap if repo_cap is not None else role_cap)
