"""The sandbox on its own worker process: `python worker.py --queue forgeflow-sandbox`."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from contracts.run import IssueResult, Outcome
from starter.sample import create_sample_repo, demo_input
from tests.e2e.conftest import WorkerProcess, start_worker

pytestmark = pytest.mark.e2e


async def test_demo_with_the_sandbox_on_a_separate_worker(
    dev_env: WorkflowEnvironment, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    repo = create_sample_repo(tmp_path / "textkit")
    main = start_worker(workers, dev_env, tmp_path, "--queue", "forgeflow", log_name="main.log")
    sandbox = start_worker(workers, dev_env, tmp_path, "--queue", "forgeflow-sandbox", log_name="sandbox.log")
    handle = await dev_env.client.start_workflow(
        "IssueWorkflow", demo_input(repo), id=f"e2e-split-{uuid.uuid4().hex[:8]}", task_queue="forgeflow",
        result_type=IssueResult,
    )  # fmt: skip
    result = await asyncio.wait_for(handle.result(), timeout=180)
    assert result.outcome == Outcome.APPROVED
    assert result.state.test_results is not None and result.state.test_results.passed == 5
    assert "serving ['forgeflow']" in main.log.read_text()
    assert "serving ['forgeflow-sandbox']" in sandbox.log.read_text()
    queues = set()
    async for run in dev_env.client.list_workflows(f'WorkflowId STARTS_WITH "{handle.id}"'):
        history = await dev_env.client.get_workflow_handle(run.id).fetch_history()
        queues |= {
            (e.activity_task_scheduled_event_attributes.activity_type.name,
             e.activity_task_scheduled_event_attributes.task_queue.name)
            for e in history.events if e.HasField("activity_task_scheduled_event_attributes")
        }  # fmt: skip
    assert ("run_tests", "forgeflow-sandbox") in queues
    assert {queue for activity, queue in queues if activity != "run_tests"} == {"forgeflow"}
