"""The seed's state machine as a table: where a run goes after each agent. Pure; no Temporal imports.

    start:          an existing pull request → REVIEWER; a person's review of forgeflow's pull
                    request → CODER (on that pull request's branch); otherwise → PLANNER
    after planner:  plan mode → END; otherwise → CODER
    after coder:    review mode → REVIEWER; otherwise → TESTER
    after tester:   passed → REVIEWER; failed, retries left → CODER; failed, none left → END (escalate)
    after reviewer: changes requested, retries left → CODER; approved or none left → END

One addition the seed's input implies: review mode on an existing PR (`pr_number`) only reviews it,
so after the reviewer it always ends. An escalation a human answers with feedback grants one more
round to AFTER_FEEDBACK. A new role is a name in `next` of some row and the rows after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel

from contracts.run import Mode

START = "start"  # the `after` of the run's first step
END = "end"  # the `next` that ends the run
AFTER_FEEDBACK = "coder"  # where a run goes on after a human answered an escalation with feedback


class StepOutcome(StrEnum):
    """What the last agent's run meant for routing (not the run's `contracts.run.Outcome`)."""

    DONE = "done"  # planner or coder finished
    PASSED = "passed"
    FAILED = "failed"
    APPROVED = "approved"
    CHANGES_REQUESTED = "changes_requested"


@dataclass(frozen=True)
class Row:
    """One line of the table: after `after`, when every condition given holds, go to `next`.
    A condition left None matches anything; the first matching row of `after` wins."""

    after: str  # a role's name, or START
    next: str  # a role's name, or END
    reason: str
    mode: Mode | None = None
    outcome: StepOutcome | None = None
    retries_left: bool | None = None  # True: at least one retry left; False: none
    existing_pr: bool | None = None  # the run only reviews an existing pull request
    human_review: bool | None = None  # the run answers a person's review of forgeflow's pull request
    escalate: bool = False  # stop for a human first (feedback goes on at AFTER_FEEDBACK)
    uses_retry: bool = False

    def matches(self, mode: Mode, outcome: StepOutcome | None, left: int, existing_pr: bool, review: bool) -> bool:
        return (
            (self.mode is None or self.mode == mode)
            and (self.outcome is None or self.outcome == outcome)
            and (self.retries_left is None or self.retries_left == (left > 0))
            and (self.existing_pr is None or self.existing_pr == existing_pr)
            and (self.human_review is None or self.human_review == review)
        )


_PASSED, _APPROVED = StepOutcome.PASSED, StepOutcome.APPROVED

TABLE: tuple[Row, ...] = (
    Row(START, "reviewer", "review of an existing pull request", existing_pr=True),
    Row(START, "coder", "a person reviewed forgeflow's pull request", human_review=True),
    Row(START, "planner", "run started"),
    Row("planner", END, "plan mode: planning only", mode="plan"),
    Row("planner", "coder", "plan ready"),
    Row("coder", "reviewer", "review mode: straight to review", mode="review"),
    Row("coder", "tester", "changes committed"),
    Row("tester", "reviewer", "tests passed", outcome=_PASSED),
    Row("tester", "coder", "tests failed; retrying with the failures", retries_left=True, uses_retry=True),
    Row("tester", END, "tests failed and no retries left", escalate=True),
    Row("reviewer", END, "review of an existing pull request posted", existing_pr=True),
    Row("reviewer", END, "review approved", outcome=_APPROVED),
    Row("reviewer", "coder", "changes requested; retrying with the comments", retries_left=True, uses_retry=True),
    Row("reviewer", END, "changes requested and no retries left"),
)


class Route(BaseModel):
    next: str  # a role's name, or END
    reason: str
    escalate: bool = False
    uses_retry: bool = False


def retries_left(retry_count: int, max_retries: int) -> int:
    return max(0, max_retries - retry_count)


def route(
    after: str,
    *,
    mode: Mode,
    outcome: StepOutcome | None,
    retries_left: int,
    reviews_existing_pr: bool = False,
    answers_human_review: bool = False,
    table: tuple[Row, ...] = TABLE,
) -> Route:
    """The next step after `after` finished with `outcome`: the first row of `table` that matches."""
    for row in table:
        if row.after == after and row.matches(mode, outcome, retries_left, reviews_existing_pr, answers_human_review):
            return Route(next=row.next, reason=row.reason, escalate=row.escalate, uses_retry=row.uses_retry)
    raise ValueError(f"no routing row after {after!r} for mode {mode}, outcome {outcome}")


def first_step(mode: Mode, *, reviews_existing_pr: bool, answers_human_review: bool = False) -> str:
    """The role a run starts with."""
    return route(
        START,
        mode=mode,
        outcome=None,
        retries_left=0,
        reviews_existing_pr=reviews_existing_pr,
        answers_human_review=answers_human_review,
    ).next


def successors(table: tuple[Row, ...] = TABLE) -> dict[str, set[str]]:
    """Each `after` and every step it can lead to (AFTER_FEEDBACK too, where a row escalates)."""
    graph: dict[str, set[str]] = {}
    for row in table:
        graph.setdefault(row.after, set()).add(row.next)
        if row.escalate:
            graph[row.after].add(AFTER_FEEDBACK)
    return graph
