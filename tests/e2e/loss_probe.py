"""A workflow that makes one call through workflows.activity_calls.execute, the path every workflow
call takes, with a one-second heartbeat timeout so a test can go silent and watch what follows
(workflow code: sandboxed, deterministic)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.activity_calls import Options, execute

PROBE_CALL = "probe_call"


@workflow.defn
class LossProbe:
    @workflow.run
    async def run(self, attempts: int) -> str:
        """`attempts`: the call's retry policy for errors (a silent attempt counts as one too)."""
        retry = RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=attempts)
        options = Options(start_to_close=timedelta(seconds=30), heartbeat=timedelta(seconds=1), retry=retry)
        return await execute(PROBE_CALL, "hello", str, options, summary="probe")
