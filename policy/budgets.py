"""Per-run budgets: a pure check the workflow makes before spending more.

The token budget counts tokens as billed (`policy.pricing.billed_tokens`): a prompt-cache read is a
tenth of a fresh input token, so a long agent run that re-reads a cached prompt every turn is not
stopped long before it has spent what the budget means. The USD budget is the budget of record.
"""

from __future__ import annotations

from contracts.run import RunBudgets
from contracts.usage import UsageTotals
from policy.pricing import billed_tokens


def run_billed_tokens(spent: UsageTotals) -> int:
    """The run's tokens as billed, summed over its agents (rounded down)."""
    return int(sum(billed_tokens(agent.usage) for agent in spent.by_agent.values()))


def tokens_left(spent: UsageTotals, budgets: RunBudgets) -> int:
    return max(0, budgets.max_tokens - run_billed_tokens(spent))


def budget_exceeded(spent: UsageTotals, budgets: RunBudgets) -> str | None:
    """Why the run may not start another agent, or None while it is within every budget."""
    if spent.total_turns >= budgets.max_total_turns:
        return f"turn budget spent: {spent.total_turns} of {budgets.max_total_turns} model turns"
    if (billed := run_billed_tokens(spent)) >= budgets.max_tokens:
        return f"token budget spent: {billed} of {budgets.max_tokens} tokens as billed (cache reads count 0.1)"
    if spent.total_cost_usd >= budgets.max_usd:
        return f"cost budget spent: ${spent.total_cost_usd:.2f} of ${budgets.max_usd:.2f}"
    return None
