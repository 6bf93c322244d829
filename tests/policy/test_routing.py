"""Every row of the seed's decision table, one line each."""

from __future__ import annotations

import pytest

from contracts.run import Mode
from policy.routing import AFTER_FEEDBACK, END, START, TABLE, Row, StepOutcome, first_step, route, successors

DONE, PASSED, FAILED = StepOutcome.DONE, StepOutcome.PASSED, StepOutcome.FAILED
APPROVED, CHANGES = StepOutcome.APPROVED, StepOutcome.CHANGES_REQUESTED

# after, mode, outcome, retries_left, existing_pr -> next, escalate, uses_retry
CASES: list[tuple[str, Mode, StepOutcome, int, bool, str, bool, bool]] = [
    ("planner", "plan", DONE, 3, False, END, False, False),
    ("planner", "autonomous", DONE, 3, False, "coder", False, False),
    ("planner", "review", DONE, 3, False, "coder", False, False),
    ("coder", "autonomous", DONE, 3, False, "tester", False, False),
    ("coder", "review", DONE, 3, False, "reviewer", False, False),
    ("tester", "autonomous", PASSED, 3, False, "reviewer", False, False),
    ("tester", "autonomous", PASSED, 0, False, "reviewer", False, False),
    ("tester", "autonomous", FAILED, 3, False, "coder", False, True),
    ("tester", "autonomous", FAILED, 1, False, "coder", False, True),
    ("tester", "autonomous", FAILED, 0, False, END, True, False),
    ("reviewer", "autonomous", CHANGES, 2, False, "coder", False, True),
    ("reviewer", "autonomous", CHANGES, 0, False, END, False, False),
    ("reviewer", "autonomous", APPROVED, 3, False, END, False, False),
    ("reviewer", "autonomous", APPROVED, 0, False, END, False, False),
    ("reviewer", "review", CHANGES, 3, False, "coder", False, True),
    ("reviewer", "review", CHANGES, 3, True, END, False, False),
    ("reviewer", "review", APPROVED, 3, True, END, False, False),
    # added with the table: the cases above in the other modes
    ("coder", "plan", DONE, 3, False, "tester", False, False),
    ("tester", "review", FAILED, 0, False, END, True, False),
    ("reviewer", "plan", APPROVED, 3, False, END, False, False),
    ("reviewer", "review", CHANGES, 0, True, END, False, False),
]


@pytest.mark.parametrize(
    ("after", "mode", "outcome", "left", "existing_pr", "expected", "escalate", "uses_retry"), CASES
)
def test_route(
    after: str,
    mode: Mode,
    outcome: StepOutcome,
    left: int,
    existing_pr: bool,
    expected: str,
    escalate: bool,
    uses_retry: bool,
) -> None:
    decision = route(after, mode=mode, outcome=outcome, retries_left=left, reviews_existing_pr=existing_pr)
    assert (decision.next, decision.escalate, decision.uses_retry) == (expected, escalate, uses_retry)
    assert decision.reason


@pytest.mark.parametrize(
    ("mode", "existing_pr", "human_review", "expected"),
    [
        ("autonomous", False, False, "planner"),
        ("plan", False, False, "planner"),
        ("review", False, False, "planner"),
        ("review", True, False, "reviewer"),
        ("autonomous", False, True, "coder"),  # a person's review of forgeflow's pull request
    ],
)
def test_first_step(mode: Mode, existing_pr: bool, human_review: bool, expected: str) -> None:
    assert first_step(mode, reviews_existing_pr=existing_pr, answers_human_review=human_review) == expected


def test_after_a_human_reviews_round_the_run_goes_on_as_usual() -> None:
    """The coder's round for a person's review is followed by the tester and the reviewer, under the budget."""
    after_coder = route("coder", mode="autonomous", outcome=DONE, retries_left=3, answers_human_review=True)
    assert after_coder.next == "tester"
    failed = route("tester", mode="autonomous", outcome=FAILED, retries_left=0, answers_human_review=True)
    assert (failed.next, failed.escalate) == (END, True)


def test_every_step_has_a_row_that_always_matches() -> None:
    """The last row of each `after` has no condition, so routing never runs out of rows."""
    last = {row.after: row for row in TABLE}
    conditions = [(r.mode, r.outcome, r.retries_left, r.existing_pr, r.human_review) for r in last.values()]
    unconditioned = [c for c in conditions if c == (None,) * 5]
    assert len(unconditioned) == len(last)


def test_every_step_named_is_routed_and_the_run_can_end() -> None:
    graph = successors()
    named = {nxt for nexts in graph.values() for nxt in nexts}
    assert named - {END} <= set(graph) - {START}
    assert END in named and AFTER_FEEDBACK in graph


def test_a_table_given_routes_a_new_role() -> None:
    table = (Row("reviewer", "security_reviewer", "second review"), Row("security_reviewer", END, "done"), *TABLE)
    assert (
        route("reviewer", mode="autonomous", outcome=APPROVED, retries_left=1, table=table).next == "security_reviewer"
    )
    assert route("security_reviewer", mode="autonomous", outcome=APPROVED, retries_left=1, table=table).next == END


def test_a_step_without_a_row_is_an_error() -> None:
    with pytest.raises(ValueError, match="designer"):
        route("designer", mode="autonomous", outcome=DONE, retries_left=1)
