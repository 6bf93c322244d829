"""Per-run budgets: a pure check the workflow makes before spending more."""

from __future__ import annotations

from contracts.run import RunBudgets
from contracts.usage import UsageTotals


def budget_exceeded(spent: UsageTotals, budgets: RunBudgets) -> str | None:
    """Why the run may not start another agent, or None while it is within every budget."""
    if spent.total_turns >= budgets.max_total_turns:
        return f"turn budget spent: {spent.total_turns} of {budgets.max_total_turns} model turns"
    if spent.total_tokens >= budgets.max_tokens:
        return f"token budget spent: {spent.total_tokens} of {budgets.max_tokens} tokens"
    if spent.total_cost_usd >= budgets.max_usd:
        return f"cost budget spent: ${spent.total_cost_usd:.2f} of ${budgets.max_usd:.2f}"
    return None
