from __future__ import annotations

import pytest
from temporalio.exceptions import TimeoutType

from policy.worker_loss import MAX_RESCHEDULES, WORKER_LOSS_TIMEOUTS, schedule_again


@pytest.mark.parametrize(
    ("timeout_type", "rescheduled", "again"),
    [
        ("HEARTBEAT", 0, True),  # the worker died mid-call: schedule it again
        ("HEARTBEAT", MAX_RESCHEDULES - 1, True),
        ("HEARTBEAT", MAX_RESCHEDULES, False),  # every budget has a cap
        ("HEARTBEAT", MAX_RESCHEDULES + 5, False),
        (None, 0, False),  # an error: the retry policy's attempts were the budget
        ("START_TO_CLOSE", 0, False),  # alive and heartbeating for its whole allowance: a hang
        ("SCHEDULE_TO_START", 0, False),
        ("SCHEDULE_TO_CLOSE", 0, False),
    ],
)
def test_schedule_again(timeout_type: str | None, rescheduled: int, again: bool) -> None:
    decision = schedule_again(timeout_type, rescheduled)
    assert decision.again is again
    assert decision.reason


def test_the_limit_can_be_chosen() -> None:
    assert schedule_again("HEARTBEAT", 0, limit=0).again is False
    assert schedule_again("HEARTBEAT", 1, limit=2).again is True


def test_timeout_names_are_temporals() -> None:
    """The workflows pass TimeoutType names: a rename in the SDK must not silently stop recovery."""
    assert {t.name for t in TimeoutType} >= WORKER_LOSS_TIMEOUTS
