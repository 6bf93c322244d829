"""Run one agent directly, as a test does: an AgentWorkflow on a worker started only for it."""

from __future__ import annotations

from temporalio.worker import Worker

from contracts.agents import AgentInput, AgentResult
from contracts.api import AGENT_WORKFLOW_TYPE


async def run_agent_on(worker: Worker, inp: AgentInput, workflow_id: str) -> AgentResult:
    """Start `worker`, run the agent on its task queue through its own client, stop the worker."""
    async with worker:
        result: AgentResult = await worker.client.execute_workflow(
            AGENT_WORKFLOW_TYPE, inp, id=workflow_id, task_queue=worker.task_queue, result_type=AgentResult
        )
    return result
