"""The demo's self-check scenario on the real dev server: the coder runs the tests in the sandbox,
reads the failure, fixes the change and runs the failing tests again before it submits, so the run
is approved after one coder round where the default scenario needs two.

Real server, real worker processes (the sandbox worker a child process), real git, real tests in the
bubblewrap sandbox; the model is the scenario's scripted replay, whose `expect` strings already stop
the run if the sandbox's output did not reach the coder. The test also reads that output where it
landed: the coder's history and its stored conversation.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from activities.blobstore import BlobStore
from contracts.commands import CommandResult
from contracts.run import IssueResult, Outcome
from starter.sample import create_sample_repo, demo_input
from storage.store import ObjectStore
from testkit.tools import git
from tests.e2e.conftest import WorkerProcess, start_worker

pytestmark = pytest.mark.e2e

COMMAND = "python -m pytest -q tests/test_slugify.py"  # what the script's coder runs first
SANDBOX_CALLS = ("run_command", "run_tests")


def _summary(event: Any) -> str:
    """What the workflow said an activity was for (its summary: `coder · model turn 3`)."""
    data = event.user_metadata.summary.data
    return str(json.loads(data)) if data else ""


def _sandbox_calls(history: WorkflowHistory, role: str) -> list[tuple[str, str, int]]:
    """The sandbox activities `role`'s agent scheduled, in order: (activity type, task queue, event id)."""
    return [
        (attrs.activity_type.name, attrs.task_queue.name, e.event_id)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and (attrs := e.activity_task_scheduled_event_attributes).activity_type.name in SANDBOX_CALLS
        and _summary(e).startswith(f"{role} · ")
    ]


def _last_transcript_key(history: WorkflowHistory, role: str) -> str:
    """The transcript `role`'s last model turn left in the store (the turn's result names its key)."""
    turns = {
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "model_turn"
        and _summary(e).startswith(f"{role} · ")
    }
    results = [
        json.loads(attrs.result.payloads[0].data)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        and (attrs := e.activity_task_completed_event_attributes).scheduled_event_id in turns
    ]
    return str(results[-1]["transcript_key"])


async def _command_result(dev_env: WorkflowEnvironment, history: WorkflowHistory, scheduled: int) -> CommandResult:
    (payloads,) = [
        e.activity_task_completed_event_attributes.result.payloads
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        and e.activity_task_completed_event_attributes.scheduled_event_id == scheduled
    ]
    (result,) = await dev_env.client.data_converter.decode(payloads, [CommandResult])
    assert isinstance(result, CommandResult)
    return result


def _tool_answers(transcript: list[dict[str, Any]]) -> dict[str, str]:
    """Each tool call's name → what the model read back (the last call of each name)."""
    names = {b["id"]: b["name"] for m in transcript for b in m["content"] if b.get("type") == "tool_use"}
    return {
        names[b["tool_use_id"]]: str(b["content"])
        for m in transcript
        for b in m["content"]
        if b.get("type") == "tool_result"
    }


async def test_the_self_check_scenario_is_approved_after_one_coder_round(
    dev_env: WorkflowEnvironment, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    repo = create_sample_repo(tmp_path / "textkit")
    head_before = git(repo, "rev-parse", "HEAD")
    start_worker(workers, dev_env, tmp_path)  # the workflow worker, and the sandbox worker as its child
    run_id = f"e2e-self-check-{uuid.uuid4().hex[:8]}"
    handle = await dev_env.client.start_workflow(
        "IssueWorkflow", demo_input(repo, scenario="self-check"), id=run_id, task_queue="forgeflow",
        result_type=IssueResult,
    )  # fmt: skip
    result = await asyncio.wait_for(handle.result(), timeout=240)

    st = result.state
    assert result.outcome == Outcome.APPROVED, st.error
    assert (st.round, st.retry_count) == (1, 0)  # one coder round: the coder found and fixed the bug itself
    assert st.test_results is not None
    assert (st.test_results.status, st.test_results.passed, st.test_results.failed) == ("passed", 5, 0)
    (branch,) = st.branches_created
    assert git(repo, "rev-list", "--count", f"main..{branch}") == "1"
    assert git(repo, "show", f"{branch}:textkit/__init__.py").count("rsplit") == 1  # the fixed cut, not the first
    assert git(repo, "rev-parse", "HEAD") == head_before and git(repo, "status", "--porcelain") == ""

    # The coder's own checks ran in the sandbox, on its queue: the command first, the failing tests after the fix.
    history = await dev_env.client.get_workflow_handle(run_id).fetch_history()  # the coder's turns are in it
    calls = _sandbox_calls(history, "coder")
    assert [(name, queue) for name, queue, _ in calls] == [
        ("run_command", "forgeflow-sandbox"),
        ("run_tests", "forgeflow-sandbox"),
    ]
    command = await _command_result(dev_env, history, calls[0][2])
    assert (command.status, command.exit_code) == ("exited", 1)  # pytest's own exit code for failed tests

    # What the coder read back is the sandbox's real output: pytest's failure, then the selected tests passing.
    store = BlobStore(ObjectStore((tmp_path / "data").resolve().as_uri()))
    transcript = json.loads(store.get(_last_transcript_key(history, "coder")))
    answers = _tool_answers(transcript)
    assert answers["run_command"].startswith(f"$ {COMMAND}\nexit code 1 after ")
    assert "2 failed, 3 passed" in answers["run_command"]
    assert "AssertionError: assert 'hello-brave-' == 'hello-brave'" in answers["run_command"]
    assert answers["run_tests"].startswith("status: passed; total 2, passed 2, failed 0")
