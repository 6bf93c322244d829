"""How a run's outcome and stages read on its pull request's commits."""

from __future__ import annotations

import pytest

from contracts.codehost import CheckConclusion, CheckStatus
from contracts.run import Outcome
from policy.checks import CONCLUSIONS, DESCRIPTION_MAX, conclusion, description, status_state


def test_every_outcome_has_a_conclusion() -> None:
    assert set(CONCLUSIONS) == set(Outcome)


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (Outcome.APPROVED, "success"),
        (Outcome.PLANNED, "success"),
        (Outcome.REVIEWED, "success"),
        (Outcome.CHANGES_REQUESTED, "failure"),
        (Outcome.ESCALATED, "failure"),
        (Outcome.FAILED, "failure"),
        (Outcome.GATE_TIMED_OUT, "failure"),
        (Outcome.REJECTED, "cancelled"),
    ],
)
def test_conclusions(outcome: Outcome, expected: str) -> None:
    assert conclusion(outcome) == expected


@pytest.mark.parametrize(
    ("status", "concluded", "state"),
    [
        ("queued", None, "pending"),
        ("in_progress", None, "pending"),
        ("completed", "success", "success"),
        ("completed", "neutral", "success"),  # superseded by a newer commit of the run
        ("completed", "failure", "failure"),
        ("completed", "cancelled", "error"),
    ],
)
def test_status_states(status: CheckStatus, concluded: CheckConclusion | None, state: str) -> None:
    assert status_state(status, concluded) == state


def test_descriptions_are_one_bounded_line() -> None:
    assert description("testing\n  round 2") == "testing round 2"
    long = description("x" * 500)
    assert len(long) == DESCRIPTION_MAX and long.endswith("…")
