"""Token usage and cost, per call and summed per agent."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Usage(BaseModel):
    """One model call's usage, in the Messages API's field names."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    def plus(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
        )


class AgentUsage(BaseModel):
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    turns: int = 0
    tool_calls: int = 0

    def add(self, spent: AgentUsage) -> None:
        """Count `spent` in this total."""
        self.usage = self.usage.plus(spent.usage)
        self.cost_usd += spent.cost_usd
        self.turns += spent.turns
        self.tool_calls += spent.tool_calls


class UsageTotals(BaseModel):
    """Usage summed per agent role, per round and agent, and for the run."""

    by_agent: dict[str, AgentUsage] = Field(default_factory=dict)
    by_round: dict[int, dict[str, AgentUsage]] = Field(
        default_factory=dict, description="Round (0: planning) → agent → usage."
    )

    @property
    def total_tokens(self) -> int:
        return sum(a.usage.total_tokens for a in self.by_agent.values())

    @property
    def total_cost_usd(self) -> float:
        return sum(a.cost_usd for a in self.by_agent.values())

    @property
    def total_turns(self) -> int:
        return sum(a.turns for a in self.by_agent.values())

    def add(self, role: str, spent: AgentUsage, round_no: int | None = None) -> None:
        self.by_agent.setdefault(role, AgentUsage()).add(spent)
        if round_no is not None:
            self.by_round.setdefault(round_no, {}).setdefault(role, AgentUsage()).add(spent)

    def round_cost(self, round_no: int) -> float:
        return sum(a.cost_usd for a in self.by_round.get(round_no, {}).values())
