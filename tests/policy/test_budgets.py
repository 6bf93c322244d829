from __future__ import annotations

import pytest

from contracts.run import RunBudgets
from contracts.usage import AgentUsage, Usage, UsageTotals
from policy.budgets import budget_exceeded, run_billed_tokens, tokens_left

BUDGETS = RunBudgets(max_total_turns=10, max_tokens=1000, max_usd=1.0)


def spent(turns: int, tokens: int, usd: float) -> UsageTotals:
    totals = UsageTotals()
    totals.add("coder", AgentUsage(usage=Usage(input_tokens=tokens), cost_usd=usd, turns=turns))
    return totals


@pytest.mark.parametrize(
    ("turns", "tokens", "usd", "why"),
    [
        (0, 0, 0.0, None),
        (9, 999, 0.99, None),
        (10, 0, 0.0, "turn budget"),
        (0, 1000, 0.0, "token budget"),
        (0, 0, 1.0, "cost budget"),
    ],
)
def test_budget_exceeded(turns: int, tokens: int, usd: float, why: str | None) -> None:
    result = budget_exceeded(spent(turns, tokens, usd), BUDGETS)
    if why is None:
        assert result is None
    else:
        assert result is not None and result.startswith(why)


def cached(input_tokens: int, cache_read: int, cache_write: int = 0) -> UsageTotals:
    totals = UsageTotals()
    usage = Usage(
        input_tokens=input_tokens, cache_read_input_tokens=cache_read, cache_creation_input_tokens=cache_write
    )
    totals.add("planner", AgentUsage(usage=usage, turns=1))
    return totals


@pytest.mark.parametrize(
    ("input_tokens", "cache_read", "cache_write", "billed", "over"),
    [
        (0, 9_000, 0, 900, False),  # nine times the budget re-read from cache costs 0.9 of it
        (100, 9_000, 0, 1000, True),
        (0, 0, 800, 1000, True),  # a cache write costs 1.25 input tokens
        (0, 0, 799, 998, False),
        (999, 9, 0, 999, False),  # fractions round down
    ],
)
def test_the_token_budget_counts_tokens_as_billed(
    input_tokens: int, cache_read: int, cache_write: int, billed: int, over: bool
) -> None:
    spent = cached(input_tokens, cache_read, cache_write)
    assert run_billed_tokens(spent) == billed
    assert tokens_left(spent, BUDGETS) == max(0, 1000 - billed)
    assert (budget_exceeded(spent, BUDGETS) is not None) == over


def test_a_mostly_cached_planner_run_is_not_stopped_at_the_default_budget() -> None:
    """The issue's run: 123 turns, 98% of the input read from cache, stopped at 5,000,000 raw tokens."""
    spent = cached(input_tokens=100_000, cache_read=4_900_000)
    assert spent.total_tokens == 5_000_000
    assert budget_exceeded(spent, RunBudgets()) is None
    assert run_billed_tokens(spent) == 590_000
