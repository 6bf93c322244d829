"""Follow a run: poll its `state` query and print what changed until it completes."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError

from contracts.api import QUERY_STATE
from contracts.run import IssueResult, OrchestrationState
from policy.outcomes import final_result
from starter.render import console, state_line

POLL_SECONDS = 0.5
FINISHED = (WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.FAILED)


async def query_state(handle: WorkflowHandle[Any, Any]) -> OrchestrationState | None:
    """The live state; for a finished run with no worker to answer queries, the state it returned."""
    try:
        state: OrchestrationState = await handle.query(
            QUERY_STATE, result_type=OrchestrationState, rpc_timeout=timedelta(seconds=10)
        )
    except (RPCError, WorkflowQueryFailedError):
        if (await handle.describe()).status in FINISHED and (final := await run_result(handle)) is not None:
            return final.state
        return None  # not picked up by a worker yet
    return state


async def run_result(handle: WorkflowHandle[Any, Any]) -> IssueResult | None:
    """The result of a finished run: what it returned, or, for a run that ended as a failed execution
    because its outcome is a failure, the result in its error's details. None for a run that failed
    before it had a state (bad input, a task that could not be fetched)."""
    try:
        raw = await handle.result()
    except WorkflowFailureError as err:
        return result_of_failure(err)
    return raw if isinstance(raw, IssueResult) else IssueResult.model_validate(raw)


def result_of_failure(err: WorkflowFailureError) -> IssueResult | None:
    return final_result(err.cause)


async def follow(handle: WorkflowHandle[Any, Any]) -> tuple[OrchestrationState | None, WorkflowExecutionStatus | None]:
    """Print new log lines and stage changes; return the last state and the final status."""
    printed, last_line = 0, ""
    while True:
        state = await query_state(handle)
        if state is not None:
            for line in state.log[printed:]:
                console.print(f"  {line}", highlight=False)
            printed = len(state.log)
            current = state_line(state)
            if current != last_line and state.pending_gate is not None:
                console.print(f"  → {current}")
            last_line = current
        status = (await handle.describe()).status
        if status in FINISHED and (final := await run_result(handle)) is not None:
            for line in final.state.log[printed:]:
                console.print(f"  {line}", highlight=False)
            return final.state, status
        if status != WorkflowExecutionStatus.RUNNING:
            return state, status
        await asyncio.sleep(POLL_SECONDS)
