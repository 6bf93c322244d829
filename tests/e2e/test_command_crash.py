"""A sandbox worker killed in the middle of an agent's command: the command runs again on another
sandbox worker, from the same edits, and the run ends with the same change as if nothing happened.

Real dev server, real worker processes (one for workflows, two sandbox workers with their own data
directories and only the object store shared), real bubblewrap; the model is a scripted replay.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from contracts.run import IssueResult, Outcome
from testkit.scripts import planner_run, reviewer_run, submit, tester_run, tool, turn, write_script
from testkit.tools import git
from tests.activities.test_sandbox import processes_matching
from tests.e2e.conftest import WorkerProcess, start_worker
from tests.e2e.recovery import running_on

pytestmark = pytest.mark.e2e

MARKER = "forgeflow-marker-crash"
# Slow enough to be killed while it runs; it appends to the file, so a second run on top of the
# first one's result would show twice.
COMMAND = (
    f"echo started; sleep 6; : {MARKER}; "
    "printf '\\n\\ndef subtract(a, b):\\n    return a - b\\n' >> calc/__init__.py; echo appended"
)
SUBTRACT = "def add(a, b):\n    return a + b\n\n\ndef subtract(a, b):\n    return a - b\n"


async def test_a_command_lost_with_its_sandbox_worker_runs_again_with_the_same_edits(
    dev_env: WorkflowEnvironment, workers: list[WorkerProcess], sample_repo: Path, tmp_path: Path
) -> None:
    coder = {
        "turns": [
            turn(tool("run_command", command=COMMAND)),
            turn(
                submit(summary="added subtract", commit_message="Add subtract"),
                expect=["appended", "The command changed 1 file(s)", "M calc/__init__.py"],
            ),
        ]
    }
    agents = {"planner": [planner_run()], "coder": [coder], "tester": [tester_run()], "reviewer": [reviewer_run()]}
    script = write_script(tmp_path / "script.json", agents)
    store = (tmp_path / "store").as_uri()
    start_worker(workers, dev_env, tmp_path, "--queue", "forgeflow", log_name="main.log", FORGEFLOW_STORAGE_URL=store)
    first = start_worker(
        workers, dev_env, tmp_path, "--queue", "forgeflow-sandbox", log_name="sandbox-a.log",
        FORGEFLOW_STORAGE_URL=store, FORGEFLOW_DATA_DIR=str(tmp_path / "sandbox-a"),
    )  # fmt: skip
    run_id = f"e2e-command-crash-{uuid.uuid4().hex[:8]}"
    handle = await dev_env.client.start_workflow(
        "IssueWorkflow",
        {"repo": str(sample_repo), "spec_content": "Add subtract(a, b) to calc.", "model_script": script},
        id=run_id,
        task_queue="forgeflow",
        result_type=IssueResult,
    )
    coder_id = run_id  # the coder runs inside the run: its activities are the run's
    pid = await running_on(dev_env.client, coder_id, "run_command", attempt=1, within=90)
    assert pid == first.proc.pid
    await asyncio.sleep(1.0)  # the command is past `echo started`, in its sleep
    assert processes_matching(MARKER) != ""  # the command runs, in the sandbox of the worker about to die
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait(timeout=10)
    # bubblewrap dies with the worker that started it, and its sandbox with it: nothing is left running.
    for _ in range(50):
        if processes_matching(MARKER) == "":
            break
        await asyncio.sleep(0.1)
    assert processes_matching(MARKER) == ""
    start_worker(
        workers, dev_env, tmp_path, "--queue", "forgeflow-sandbox", log_name="sandbox-b.log",
        FORGEFLOW_STORAGE_URL=store, FORGEFLOW_DATA_DIR=str(tmp_path / "sandbox-b"),
    )  # fmt: skip

    result = await asyncio.wait_for(handle.result(), timeout=180)
    assert result.outcome == Outcome.APPROVED, result.state.error
    assert result.state.round == 1
    (branch,) = result.state.branches_created
    # The command ran again from the same edits (none yet): subtract was appended once, not twice.
    assert git(sample_repo, "show", f"{branch}:calc/__init__.py") == SUBTRACT.rstrip("\n")
    history = await dev_env.client.get_workflow_handle(coder_id).fetch_history()
    (command_event,) = [
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "run_command"
    ]
    (attempt,) = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and e.activity_task_started_event_attributes.scheduled_event_id == command_event
    ]
    assert attempt == 2  # the first attempt was lost with its worker; the second completed
    assert result.state.test_results is not None and result.state.test_results.status == "passed"
