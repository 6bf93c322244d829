"""Cancelling a run while its tests run in the sandbox kills every process of that run."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError
from temporalio.testing import WorkflowEnvironment

from starter.sample import create_sample_repo, demo_input
from testkit.tools import git
from tests.e2e.conftest import WorkerProcess, start_worker, temporal_cli, wait_until
from tests.e2e.recovery import marked_process

pytestmark = pytest.mark.e2e
MARKER = "forgeflow_cancel_marker_5521"


def marked_processes() -> str:
    return subprocess.run(["pgrep", "-af", MARKER], capture_output=True, text=True).stdout.strip()


def all_commands() -> str:
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout


async def test_cancelling_the_run_kills_the_sandboxed_tests(
    dev_env: WorkflowEnvironment, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    repo = create_sample_repo(tmp_path / "textkit")
    (repo / "tests" / "test_slow.py").write_text(
        f"import subprocess\n\n\ndef test_slow():\n"
        f"    subprocess.Popen(['sh', '-c', 'sleep 600; : {MARKER}'])  # a grandchild, left to itself\n"
        f"    subprocess.run(['sh', '-c', 'sleep 600; : {MARKER}'])\n"
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a slow test")
    start_worker(workers, dev_env, tmp_path)
    workflow_id = f"e2e-cancel-{uuid.uuid4().hex[:8]}"
    await dev_env.client.start_workflow("IssueWorkflow", demo_input(repo), id=workflow_id, task_queue="forgeflow")
    await asyncio.to_thread(wait_until, marked_processes, timeout=120, what="the slow test to run in the sandbox")
    # This run's own groups (other tests' runs may have theirs meanwhile: the suite runs in parallel).
    found = marked_process(MARKER)
    assert found is not None and found[1], "the run has its own cgroup while it runs"
    groups = found[1]

    temporal_cli(dev_env, "workflow", "cancel", "--workflow-id", workflow_id)

    handle = dev_env.client.get_workflow_handle(workflow_id)
    with pytest.raises(WorkflowFailureError) as ended:
        await asyncio.wait_for(handle.result(), timeout=60)
    assert isinstance(ended.value.cause, CancelledError)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    await asyncio.to_thread(
        wait_until,
        lambda: marked_processes() == "" and not any(group.exists() for group in groups),
        timeout=30,
        what="nothing left running",
    )
    assert MARKER not in await asyncio.to_thread(all_commands)
