from __future__ import annotations

import pytest

from contracts.run import RunBudgets
from contracts.usage import AgentUsage, Usage, UsageTotals
from policy.budgets import budget_exceeded

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
