"""A run whose outcome is a failure is a failed workflow execution, as the Temporal UI, `temporal
workflow list --query 'ExecutionStatus="Failed"'` and the SDK's metrics count it; our CLI still shows
its final state. Started the way the README says operators start runs: with the `temporal` CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from testkit.loopback.anthropic_api import AnthropicLoopback, Reply
from tests.e2e.conftest import ROOT, WorkerProcess, start_worker, temporal_cli

pytestmark = pytest.mark.e2e


async def test_a_run_with_a_wrong_api_key_is_a_failed_execution(
    dev_env: WorkflowEnvironment, workers: list[WorkerProcess], tmp_path: Path, sample_repo: Path
) -> None:
    with AnthropicLoopback() as claude:
        claude.replies.append(Reply.error(401, "authentication_error"))  # what Claude says to a wrong key
        env = {"ANTHROPIC_API_KEY": "sk-ant-wrong-key", "ANTHROPIC_BASE_URL": claude.base_url}
        await run_and_check_it_failed(dev_env, workers, tmp_path, sample_repo, env)
    assert len(claude.requests) == 1  # not retryable: asked once


async def run_and_check_it_failed(
    dev_env: WorkflowEnvironment, workers: list[WorkerProcess], tmp_path: Path, sample_repo: Path, env: dict[str, str]
) -> None:
    start_worker(workers, dev_env, tmp_path, **env)
    workflow_id = f"e2e-failed-{uuid.uuid4().hex[:6]}"
    params = {"repo": str(sample_repo), "spec_content": "Add calc.subtract(a, b)."}  # Claude, not a script
    temporal_cli(
        dev_env, "workflow", "start", "--type", "IssueWorkflow", "--task-queue", "forgeflow",
        "--workflow-id", workflow_id, "--input", json.dumps(params),
    )  # fmt: skip
    handle = dev_env.client.get_workflow_handle(workflow_id)

    for _ in range(600):
        status = (await handle.describe()).status
        if status != WorkflowExecutionStatus.RUNNING:
            break
        await asyncio.sleep(0.2)
    assert status == WorkflowExecutionStatus.FAILED

    failed = temporal_cli(
        dev_env, "workflow", "list", "--query", f'ExecutionStatus="Failed" AND WorkflowId="{workflow_id}"', "-o", "json"
    )
    assert workflow_id in failed
    described = json.loads(temporal_cli(dev_env, "workflow", "describe", "--workflow-id", workflow_id, "-o", "json"))
    failure = json.dumps(described)
    assert "RunFailed" in failure and "authentication failed: check the API key" in failure

    # `forgeflow watch` still shows the final state (from the failure's details) and exits 1.
    address = dev_env.client.service_client.config.target_host
    env = {**os.environ, "TEMPORAL_ADDRESS": address, "FORGEFLOW_DATA_DIR": str(tmp_path / "cli"), "COLUMNS": "200"}
    watch = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "starter", "watch", workflow_id],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert watch.returncode == 1, watch.stdout + watch.stderr
    assert "the planner step failed" in watch.stdout and "run finished: failed" in watch.stdout
