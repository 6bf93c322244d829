"""Every row of the seed's decision table, one line each."""

from __future__ import annotations

import pytest

from policy.routing import Next, StepOutcome, route

DONE, PASSED, FAILED = StepOutcome.DONE, StepOutcome.PASSED, StepOutcome.FAILED
APPROVED, CHANGES = StepOutcome.APPROVED, StepOutcome.CHANGES_REQUESTED

# after, mode, outcome, retries_left, existing_pr -> next, escalate, uses_retry
TABLE = [
    ("planner", "plan", DONE, 3, False, Next.END, False, False),
    ("planner", "autonomous", DONE, 3, False, Next.CODER, False, False),
    ("planner", "review", DONE, 3, False, Next.CODER, False, False),
    ("coder", "autonomous", DONE, 3, False, Next.TESTER, False, False),
    ("coder", "review", DONE, 3, False, Next.REVIEWER, False, False),
    ("tester", "autonomous", PASSED, 3, False, Next.REVIEWER, False, False),
    ("tester", "autonomous", PASSED, 0, False, Next.REVIEWER, False, False),
    ("tester", "autonomous", FAILED, 3, False, Next.CODER, False, True),
    ("tester", "autonomous", FAILED, 1, False, Next.CODER, False, True),
    ("tester", "autonomous", FAILED, 0, False, Next.END, True, False),
    ("reviewer", "autonomous", CHANGES, 2, False, Next.CODER, False, True),
    ("reviewer", "autonomous", CHANGES, 0, False, Next.END, False, False),
    ("reviewer", "autonomous", APPROVED, 3, False, Next.END, False, False),
    ("reviewer", "autonomous", APPROVED, 0, False, Next.END, False, False),
    ("reviewer", "review", CHANGES, 3, False, Next.CODER, False, True),
    ("reviewer", "review", CHANGES, 3, True, Next.END, False, False),
    ("reviewer", "review", APPROVED, 3, True, Next.END, False, False),
]


@pytest.mark.parametrize(
    ("after", "mode", "outcome", "left", "existing_pr", "expected", "escalate", "uses_retry"), TABLE
)
def test_route(
    after: str,
    mode: str,
    outcome: StepOutcome,
    left: int,
    existing_pr: bool,
    expected: Next,
    escalate: bool,
    uses_retry: bool,
) -> None:
    decision = route(
        after,  # type: ignore[arg-type]  # table rows are literals
        mode=mode,  # type: ignore[arg-type]
        outcome=outcome,
        retries_left=left,
        reviews_existing_pr=existing_pr,
    )
    assert (decision.next, decision.escalate, decision.uses_retry) == (expected, escalate, uses_retry)
    assert decision.reason
