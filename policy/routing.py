"""The seed's state machine: where a run goes after each agent. Pure; no Temporal imports.

    after planner:  plan mode → END; otherwise → CODER
    after coder:    review mode → REVIEWER; otherwise → TESTER
    after tester:   passed → REVIEWER; failed, retries left → CODER; failed, none left → END (escalate)
    after reviewer: changes requested, retries left → CODER; approved or none left → END

One addition the seed's input implies: review mode on an existing PR (`pr_number`) only reviews it,
so after the reviewer it always ends.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

from contracts.agents import Role
from contracts.run import Mode


class Next(StrEnum):
    PLANNER = "planner"
    CODER = "coder"
    TESTER = "tester"
    REVIEWER = "reviewer"
    END = "end"


class StepOutcome(StrEnum):
    """What the last agent's run meant for routing (not the run's `contracts.run.Outcome`)."""

    DONE = "done"  # planner or coder finished
    PASSED = "passed"
    FAILED = "failed"
    APPROVED = "approved"
    CHANGES_REQUESTED = "changes_requested"


class Route(BaseModel):
    next: Next
    reason: str
    escalate: bool = False
    uses_retry: bool = False


def retries_left(retry_count: int, max_retries: int) -> int:
    return max(0, max_retries - retry_count)


def route(
    after: Role,
    *,
    mode: Mode,
    outcome: StepOutcome,
    retries_left: int,
    reviews_existing_pr: bool = False,
) -> Route:
    """The next step after `after` finished with `outcome`."""
    if after == "planner":
        if mode == "plan":
            return Route(next=Next.END, reason="plan mode: planning only")
        return Route(next=Next.CODER, reason="plan ready")
    if after == "coder":
        if mode == "review":
            return Route(next=Next.REVIEWER, reason="review mode: straight to review")
        return Route(next=Next.TESTER, reason="changes committed")
    if after == "tester":
        if outcome == StepOutcome.PASSED:
            return Route(next=Next.REVIEWER, reason="tests passed")
        if retries_left > 0:
            return Route(next=Next.CODER, reason="tests failed; retrying with the failures", uses_retry=True)
        return Route(next=Next.END, reason="tests failed and no retries left", escalate=True)
    # after reviewer
    if reviews_existing_pr:
        return Route(next=Next.END, reason="review of an existing pull request posted")
    if outcome == StepOutcome.APPROVED:
        return Route(next=Next.END, reason="review approved")
    if retries_left > 0:
        return Route(next=Next.CODER, reason="changes requested; retrying with the comments", uses_retry=True)
    return Route(next=Next.END, reason="changes requested and no retries left")
