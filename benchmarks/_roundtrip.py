"""The workflow and the floor activity of benchmarks/command_roundtrip.py.

A workflow that calls activities one at a time, in rounds: each round calls every activity of its
input once, in order, so the kinds being compared see the same machine load over the run (a slow
minute on a shared machine lands on all of them). Each call's activity id is `<label>-<round>`, so
the history alone says which kind each activity was. No retries: a failed call fails the run, as a
benchmark of a failing command would measure nothing.

Here, apart from the benchmark's command, because Temporal's workflow sandbox imports a workflow's
module afresh: this one imports only what a workflow may.
"""

from __future__ import annotations

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from contracts.api import sandbox_queue
    from contracts.commands import CommandResult, RunCommandInput
    from workflows.activity_calls import RUN_COMMAND, sandbox_call

WORKFLOW = "CommandRoundTripWorkflow"
NOOP = "roundtrip_noop"


class Call(BaseModel):
    label: str  # the activity id's prefix, which names the row of the report
    command: RunCommandInput | None = None  # None: the no-op activity


class RoundTripInput(BaseModel):
    rounds: int
    calls: list[Call]


@activity.defn(name=NOOP)
async def noop() -> None:
    """The floor: an activity that does nothing, so its round trip is Temporal's alone."""


@workflow.defn(name=WORKFLOW)
class CommandRoundTripWorkflow:
    @workflow.run
    async def run(self, inp: RoundTripInput) -> list[CommandResult]:
        """Every call of every round, in sequence; the commands' results, in the order they ran. The
        activities run on the sandbox queue beside this workflow's, as forgeflow's own calls do, so
        none is dispatched eagerly to the workflow's worker."""
        results: list[CommandResult] = []
        for n in range(inp.rounds):
            for call in inp.calls:
                if call.command is None:
                    await workflow.execute_activity(
                        NOOP,
                        activity_id=f"{call.label}-{n}",
                        task_queue=sandbox_queue(workflow.info().task_queue),
                        start_to_close_timeout=sandbox_call(1).start_to_close,
                        retry_policy=RetryPolicy(maximum_attempts=1),
                    )
                    continue
                options = sandbox_call(call.command.timeout_seconds)  # as an agent's call: heartbeats
                result = await workflow.execute_activity(
                    RUN_COMMAND,
                    call.command,
                    activity_id=f"{call.label}-{n}",
                    task_queue=sandbox_queue(workflow.info().task_queue),
                    result_type=CommandResult,
                    start_to_close_timeout=options.start_to_close,
                    heartbeat_timeout=options.heartbeat,
                    retry_policy=RetryPolicy(maximum_attempts=1),
                )
                results.append(result)
        return results
