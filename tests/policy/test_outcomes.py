from __future__ import annotations

import pytest

from contracts.run import Outcome
from policy.outcomes import failure_type

TABLE = [
    (Outcome.APPROVED, None),
    (Outcome.PLANNED, None),
    (Outcome.REVIEWED, None),
    (Outcome.CHANGES_REQUESTED, None),
    (Outcome.REJECTED, None),
    (Outcome.FAILED, "RunFailed"),
    (Outcome.ESCALATED, "RunEscalated"),
    (Outcome.GATE_TIMED_OUT, "GateTimedOut"),
]


@pytest.mark.parametrize(("outcome", "error_type"), TABLE)
def test_failure_type(outcome: Outcome, error_type: str | None) -> None:
    assert failure_type(outcome) == error_type


def test_every_outcome_is_in_the_table() -> None:
    assert {row[0] for row in TABLE} == set(Outcome)
