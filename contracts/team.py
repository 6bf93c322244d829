"""A repository's shaping of its agents, from its `.forgeflow.yml`: guidance, model, turn cap and a
subset of tools per role, and extra reviewers. It can only narrow what the run allows
(policy/agent_settings.py decides what of it stands); it never adds a tool, a command, network or a
secret.

Add optional fields only; never rename a field once a run has used it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_INSTRUCTIONS = 4000  # characters of a repository's guidance for one agent
MAX_REVIEWERS = 4
REVIEWER_NAME = r"^[a-z][a-z0-9_-]{0,31}$"


class AgentSettings(BaseModel):
    """One agent's settings in `.forgeflow.yml` (`agents.<role>`, or an entry of `reviewers`)."""

    model_config = ConfigDict(extra="forbid")

    instructions: str | None = Field(
        default=None,
        max_length=MAX_INSTRUCTIONS,
        description="Added to the built-in prompt, marked as the repository's guidance.",
    )
    model: str | None = Field(default=None, pattern=r"^claude-[a-z0-9.-]{1,80}$", description="A Claude model id.")
    max_turns: int | None = Field(default=None, ge=1, le=500, description="Lowers the role's turn cap.")
    tools: list[str] | None = Field(
        default=None, max_length=50, description="A subset of the role's tools; anything else is refused."
    )


class ReviewerSettings(AgentSettings):
    """An extra reviewer: a reviewer agent with its own name, guidance and model, run beside the main one."""

    name: str = Field(pattern=REVIEWER_NAME, description="e.g. security; names its agent and its comments.")


class TeamSettings(BaseModel):
    """What a run carries of the repository's agent settings (TaskSpec.team)."""

    model_config = ConfigDict(extra="ignore")

    agents: dict[str, AgentSettings] = Field(default_factory=dict, description="By built-in role name.")
    reviewers: list[ReviewerSettings] = Field(default_factory=list, max_length=MAX_REVIEWERS)
