"""Whether an activity whose retries ended with its worker lost is scheduled again. Pure.

Temporal's RetryPolicy counts an attempt whose worker died like any error, so a policy sized for
errors (the sandbox allows two attempts: a test run that errors twice will error again) would let
two crashes during one test run end the tester's step and leave the run waiting for a human. So
the workflows schedule a call again when its last attempt was lost with its worker, a bounded
number of times: worker loss is retried more often than errors, and never for ever (a call that
kills every worker it runs on must end).

Every activity heartbeats (activities/_heartbeat.py) under a heartbeat timeout much shorter than its
start-to-close timeout, so a dead worker shows as a HEARTBEAT timeout. A START_TO_CLOSE timeout
then means the activity was alive and heartbeating for its whole allowance: a hang, which the
retry policy's attempts govern like an error (scheduling a hung ten-minute model call again
would multiply the hang, not recover from a crash).
"""

from __future__ import annotations

from pydantic import BaseModel

MAX_RESCHEDULES = 3  # per call; the sandbox's 2 attempts then survive 7 crashes in a row, the others far more
WORKER_LOSS_TIMEOUTS = frozenset({"HEARTBEAT"})  # Temporal's TimeoutType names


class WorkerLossDecision(BaseModel):
    again: bool
    reason: str


def schedule_again(timeout_type: str | None, rescheduled: int, limit: int = MAX_RESCHEDULES) -> WorkerLossDecision:
    """`timeout_type`: the TimeoutType name of the call's final failure, None when it was not a
    timeout; `rescheduled`: how many times this call was already scheduled again."""
    if timeout_type not in WORKER_LOSS_TIMEOUTS:
        what = f"a {timeout_type} timeout" if timeout_type else "an error"
        return WorkerLossDecision(again=False, reason=f"failed with {what}, not a lost worker")
    if rescheduled >= limit:
        return WorkerLossDecision(
            again=False, reason=f"its worker was lost again after {rescheduled} new schedules: giving up"
        )
    return WorkerLossDecision(
        again=True, reason=f"its worker was lost (no heartbeat): scheduling it again ({rescheduled + 1} of {limit})"
    )
