"""The floor of benchmarks/concurrency.py: the least a Temporal worker can do for the same model calls.

A workflow that loops model turns as activities until the model calls `submit`; each activity sends
the conversation so far (the activity's input) through one reused `anthropic.AsyncAnthropic` client,
streamed as forgeflow calls it, with the planner's system prompt and tools so the requests are the
same size. Tool calls are answered inline with a fixed string: no tool activities, no transcript
store, no state, no search attributes. Default data converter, default worker options.

    python -m benchmarks._floor --address HOST:PORT --queue QUEUE   (ANTHROPIC_BASE_URL set)

Prints READY once the worker polls; runs until SIGTERM/SIGINT.

SHAPED_WORKFLOW is the same loop in forgeflow's shape, and nothing more: a step activity (forgeflow
fetches the task), the loop as a child workflow (forgeflow's planner was an AgentWorkflow child), a
step activity (forgeflow posts the plan). The step activities return their input.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    import anthropic
    from temporalio.client import Client
    from temporalio.worker import Worker

    from roles.planner import PLANNER

WORKFLOW = "FloorWorkflow"
SHAPED_WORKFLOW = "ShapedFloorWorkflow"
ACTIVITY = "floor_model_turn"
STEP = "floor_step"
READY = "READY"
MAX_TURNS = 30  # the planner's budget
TOOL_ANSWER = "ok"


class FloorActivities:
    def __init__(self, client: anthropic.AsyncAnthropic, model: str) -> None:
        self._client = client
        self._model = model
        self._system = PLANNER.system_prompt
        self._tools = PLANNER.tools()

    @activity.defn(name=ACTIVITY)
    async def model_turn(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One Messages API call on the conversation so far; the reply's content blocks."""
        async with self._client.messages.stream(
            model=self._model,
            max_tokens=8192,
            system=self._system,
            tools=self._tools,  # type: ignore[arg-type]  # wire-shaped dicts
            messages=messages,  # type: ignore[arg-type]
        ) as stream:
            message = await stream.get_final_message()
        return [block.model_dump(mode="json", exclude_none=True) for block in message.content]


def loop_id(workflow_id: str) -> str:
    """The id of a SHAPED_WORKFLOW run's child, the loop."""
    return f"{workflow_id}.loop"


@activity.defn(name=STEP)
async def step(text: str) -> str:
    return text


@workflow.defn(name=SHAPED_WORKFLOW)
class ShapedFloorWorkflow:
    @workflow.run
    async def run(self, task: str) -> int:
        """FloorWorkflow's turns, run as a child (loop_id) between two step activities."""
        await workflow.execute_activity(STEP, task, start_to_close_timeout=timedelta(minutes=1))
        turns: int = await workflow.execute_child_workflow(WORKFLOW, task, id=loop_id(workflow.info().workflow_id))
        await workflow.execute_activity(STEP, task, start_to_close_timeout=timedelta(minutes=1))
        return turns


@workflow.defn(name=WORKFLOW)
class FloorWorkflow:
    @workflow.run
    async def run(self, task: str) -> int:
        """The number of model turns it took to reach `submit`."""
        messages: list[dict[str, Any]] = [{"role": "user", "content": task}]
        for turn in range(1, MAX_TURNS + 1):
            content: list[dict[str, Any]] = await workflow.execute_activity(
                ACTIVITY,
                messages,
                start_to_close_timeout=timedelta(minutes=10),
                retry_policy=RetryPolicy(maximum_attempts=3),
            )
            uses = [block for block in content if block.get("type") == "tool_use"]
            if any(use["name"] == "submit" for use in uses):
                return turn
            messages.append({"role": "assistant", "content": content})
            results = [{"type": "tool_result", "tool_use_id": use["id"], "content": TOOL_ANSWER} for use in uses]
            messages.append({"role": "user", "content": results or [{"type": "text", "text": "go on"}]})
        raise ApplicationError(f"no submit within {MAX_TURNS} turns", non_retryable=True)


async def serve(address: str, queue: str, model: str) -> None:
    client = await Client.connect(address)
    model_client = anthropic.AsyncAnthropic(max_retries=0)  # ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    activities = FloorActivities(model_client, model)
    workflows = [FloorWorkflow, ShapedFloorWorkflow]
    async with Worker(client, task_queue=queue, workflows=workflows, activities=[activities.model_turn, step]):
        print(READY, flush=True)
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--model", default="claude-floor")
    args = parser.parse_args()
    asyncio.run(serve(args.address, args.queue, args.model))
    sys.stdout.flush()
    os._exit(0)  # the Temporal client's Rust threads can abort CPython's teardown (temporalio/sdk-python#300)
