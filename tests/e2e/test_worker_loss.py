"""Worker loss on the dev server: a call whose attempts all went silent is scheduled again, a
bounded number of times, while errors keep their retry policy's budget.

The activity goes silent (no heartbeat, no result), which is what a killed worker looks like to
the server: the attempt ends in a heartbeat timeout. tests/e2e/test_github_crash.py kills real
worker processes during a whole run.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.client import WorkflowFailureError, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from policy.worker_loss import MAX_RESCHEDULES
from tests.e2e.loss_probe import PROBE_CALL, LossProbe
from workflows.activity_calls import WORKER_LOSS_PATCH

pytestmark = pytest.mark.e2e


class ProbeCalls:
    """The probe's activity: silent on its first `silent` calls, then it answers (or always fails)."""

    def __init__(self, silent: int, *, fail: bool = False) -> None:
        self.silent, self.fail = silent, fail
        self.attempts: list[int] = []

    @activity.defn(name=PROBE_CALL)
    async def probe_call(self, text: str) -> str:
        self.attempts.append(activity.info().attempt)
        if self.fail:
            raise ApplicationError("a real error", type="Broken")
        if len(self.attempts) <= self.silent:
            await asyncio.Event().wait()  # a dead worker: the server hears nothing until the timeout
        return text.upper()


async def probe(env: WorkflowEnvironment, calls: ProbeCalls, attempts: int) -> tuple[str | BaseException, str]:
    queue, wf_id = f"loss-{uuid.uuid4().hex[:8]}", f"loss-{uuid.uuid4().hex[:8]}"
    async with Worker(env.client, task_queue=queue, workflows=[LossProbe], activities=[calls.probe_call]):
        try:
            result: str | BaseException = await env.client.execute_workflow(
                LossProbe.run, attempts, id=wf_id, task_queue=queue
            )
        except WorkflowFailureError as err:
            result = err
    return result, wf_id


def _calls(history: WorkflowHistory) -> tuple[int, list[int], list[bytes]]:
    """How many times the call was scheduled, the timeout types of those that timed out, and the
    patch markers recorded."""
    scheduled, timeouts, patches = 0, [], []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled += 1
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
            timeouts.append(event.activity_task_timed_out_event_attributes.failure.timeout_failure_info.timeout_type)
        elif event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            patches.append(event.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)
    return scheduled, timeouts, patches


async def test_a_call_lost_on_every_attempt_is_scheduled_again(dev_env: WorkflowEnvironment) -> None:
    calls = ProbeCalls(silent=3)  # both attempts lost, then the first attempt of the new call
    result, wf_id = await probe(dev_env, calls, attempts=2)
    assert result == "HELLO"
    assert calls.attempts == [1, 2, 1, 2]
    history = await dev_env.client.get_workflow_handle(wf_id).fetch_history()
    scheduled, timeouts, patches = _calls(history)
    assert scheduled == 2 and timeouts == [TimeoutType.TIMEOUT_TYPE_HEARTBEAT]
    assert len(patches) == 1 and WORKER_LOSS_PATCH.encode() in patches[0]  # marked: it replays as it ran
    replayer = Replayer(workflows=[LossProbe], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)


async def test_worker_loss_is_retried_a_bounded_number_of_times(dev_env: WorkflowEnvironment) -> None:
    calls = ProbeCalls(silent=1000)  # a call that takes down every worker it runs on
    result, wf_id = await probe(dev_env, calls, attempts=1)
    assert isinstance(result, WorkflowFailureError)
    assert isinstance(result.cause, ActivityError) and isinstance(result.cause.cause, TimeoutError)
    assert len(calls.attempts) == MAX_RESCHEDULES + 1
    scheduled, timeouts, _ = _calls(await dev_env.client.get_workflow_handle(wf_id).fetch_history())
    assert scheduled == MAX_RESCHEDULES + 1 and timeouts == [TimeoutType.TIMEOUT_TYPE_HEARTBEAT] * scheduled


async def test_errors_keep_their_retry_budget(dev_env: WorkflowEnvironment) -> None:
    calls = ProbeCalls(silent=0, fail=True)
    result, wf_id = await probe(dev_env, calls, attempts=2)
    assert isinstance(result, WorkflowFailureError) and isinstance(result.cause, ActivityError)
    assert isinstance(result.cause.cause, ApplicationError) and result.cause.cause.type == "Broken"
    assert calls.attempts == [1, 2]  # not scheduled again: an error is not a lost worker
    scheduled, timeouts, patches = _calls(await dev_env.client.get_workflow_handle(wf_id).fetch_history())
    assert (scheduled, timeouts, patches) == (1, [], [])
