"""The demo run on the real dev server: started and approved with the `temporal` CLI, then a crash.

Real server, real worker processes, real git, real tests in the bubblewrap sandbox; the model is
the bundled scripted replay.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from contracts.run import IssueResult, Outcome
from starter.sample import create_sample_repo, demo_input
from testkit.tools import git
from tests.e2e.conftest import WorkerProcess, cli_query_state, start_worker, temporal_cli, wait_until

pytestmark = pytest.mark.e2e
# Set to a directory (tests/replay/histories) to record this run's histories for the replay test.
RECORD_TO = os.environ.get("FORGEFLOW_RECORD_HISTORY")


def _state_or_none(dev_env: WorkflowEnvironment, workflow_id: str) -> dict[str, Any] | None:
    try:
        return cli_query_state(dev_env, workflow_id)
    except AssertionError:
        return None  # not picked up by a worker yet


async def _result(dev_env: WorkflowEnvironment, workflow_id: str) -> IssueResult:
    handle = dev_env.client.get_workflow_handle(workflow_id, result_type=IssueResult)
    return await asyncio.wait_for(handle.result(), timeout=240)


def _assert_demo_outcome(result: IssueResult, repo: Path, head_before: str) -> str:
    st = result.state
    assert result.outcome == Outcome.APPROVED
    assert st.round == 2 and st.retry_count == 1  # failing run → coder retry → passing run
    assert st.test_results is not None
    assert (st.test_results.status, st.test_results.passed, st.test_results.failed) == ("passed", 5, 0)
    (branch,) = st.branches_created
    assert git(repo, "branch", "--list", "forgeflow/*").split() == [branch]
    assert git(repo, "rev-list", "--count", f"main..{branch}") == "2"  # one commit per coder round
    assert git(repo, "rev-parse", "HEAD") == head_before and git(repo, "status", "--porcelain") == ""
    return branch


async def test_demo_started_and_approved_with_the_temporal_cli(
    dev_env: WorkflowEnvironment, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    repo = create_sample_repo(tmp_path / "textkit")
    head_before = git(repo, "rev-parse", "HEAD")
    start_worker(workers, dev_env, tmp_path)
    workflow_id = f"e2e-demo-{uuid.uuid4().hex[:8]}"
    params = json.dumps(demo_input(repo, require_plan_approval=True))
    temporal_cli(
        dev_env, "workflow", "start", "--type", "IssueWorkflow", "--task-queue", "forgeflow",
        "--workflow-id", workflow_id, "--input", params,
    )  # fmt: skip

    def plan_gate_open() -> dict[str, Any] | None:
        state = _state_or_none(dev_env, workflow_id)
        return state if state and state.get("pending_gate") else None

    state = wait_until(plan_gate_open, timeout=90, what="the plan approval gate")
    assert state["pending_gate"]["kind"] == "plan_approval" and state["plan"]["tasks"]
    assert state["scripted_replay"] is True
    temporal_cli(
        dev_env, "workflow", "signal", "--workflow-id", workflow_id, "--name", "approve",
        "--input", json.dumps({"comment": "go ahead", "by": "e2e"}),
    )  # fmt: skip

    result = await _result(dev_env, workflow_id)
    branch = _assert_demo_outcome(result, repo, head_before)
    first_run = result.state.commits[0]
    assert git(repo, "show", f"{branch}:textkit/__init__.py").count("rsplit") == 1
    assert first_run != result.state.commits[1]
    reviews = Path(git(repo, "rev-parse", "--absolute-git-dir")) / "forgeflow" / "reviews"
    assert "approve" in next(reviews.rglob("latest.md")).read_text()

    # The run is findable in the UI by its search attributes.
    listed = temporal_cli(
        dev_env, "workflow", "list", "--query",
        f'ForgeflowOutcome="approved" AND ForgeflowStage="done" AND ForgeflowMode="autonomous" '
        f'AND ForgeflowRepo="{repo}"', "-o", "json",
    )  # fmt: skip
    assert workflow_id in listed

    if RECORD_TO:
        await _record(dev_env, workflow_id, Path(RECORD_TO))


async def _record(dev_env: WorkflowEnvironment, workflow_id: str, into: Path) -> None:
    """Save the run's history and its agents' histories as the replay test reads them."""
    async for wf in dev_env.client.list_workflows(f'WorkflowId STARTS_WITH "{workflow_id}"'):
        history = await dev_env.client.get_workflow_handle(wf.id).fetch_history()
        (into / f"{wf.id}.json").write_text(history.to_json())  # replay needs the original id


async def test_worker_killed_mid_agent_loop_resumes_without_repeating_completed_turns(
    dev_env: WorkflowEnvironment, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    repo = create_sample_repo(tmp_path / "textkit")
    head_before = git(repo, "rev-parse", "HEAD")
    ledger = tmp_path / "model-requests.jsonl"
    slow = {"FORGEFLOW_SCRIPT_LEDGER": str(ledger), "FORGEFLOW_SCRIPT_DELAY": "0.5"}
    first = start_worker(workers, dev_env, tmp_path, **slow)
    workflow_id = f"e2e-crash-{uuid.uuid4().hex[:8]}"
    await dev_env.client.start_workflow("IssueWorkflow", demo_input(repo), id=workflow_id, task_queue="forgeflow")

    def requests() -> list[dict[str, Any]]:
        if not ledger.exists():
            return []
        lines = [json.loads(line) for line in ledger.read_text().splitlines()]
        return [r for r in lines if r["run_id"] == workflow_id]

    # Kill the worker in the middle of the coder's first loop: some turns done, one in flight.
    wait_until(lambda: sum(r["role"] == "coder" for r in requests()) >= 3, timeout=120, what="coder turns")
    first.kill9()
    before_kill = requests()
    start_worker(workers, dev_env, tmp_path, **slow)

    result = await _result(dev_env, workflow_id)
    _assert_demo_outcome(result, repo, head_before)
    counts = Counter((r["role"], r["invocation"], r["turn"]) for r in requests())
    repeated = [key for key, n in counts.items() if n > 1]
    # Only the turn in flight when the worker died may be asked again; every completed turn once.
    in_flight = before_kill[-1]
    assert repeated in ([], [(in_flight["role"], in_flight["invocation"], in_flight["turn"])])
    assert max(counts.values()) <= 2
    described = await dev_env.client.get_workflow_handle(workflow_id).describe()
    assert described.status == WorkflowExecutionStatus.COMPLETED
