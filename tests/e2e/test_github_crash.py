"""kill -9 between "GitHub opened the pull request" and "the activity completed": exactly one PR, one review.

The run is started with `forgeflow start` against a GitHub repository (the loopback GitHub, real git
behind it), workers are real processes on the dev server, and the loopback holds its reply to
"create pull request" until the worker is dead.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from contracts.run import IssueResult, Outcome
from tests.conftest import git
from tests.e2e.conftest import ROOT, WorkerProcess, start_worker, temporal_cli
from tests.loopback.github_api import GitHubLoopback, Issue
from tests.scripts import coder_run, planner_run, reviewer_run, tester_run, write_script

pytestmark = pytest.mark.e2e
TOKEN = "ghp_e2e_crash_token"
FIXED = "def add(a, b):\n    return a + b\n\n\ndef subtract(a, b):\n    return a - b\n"


@pytest.fixture
def github(sample_repo: Path) -> Iterator[GitHubLoopback]:
    with GitHubLoopback("acme", "calc", sample_repo, TOKEN) as gh:
        gh.issues[7] = Issue(title="Add subtract", body="Please add calc.subtract(a, b).")
        yield gh


async def test_worker_killed_after_github_opened_the_pull_request(
    dev_env: WorkflowEnvironment,
    workers: list[WorkerProcess],
    tmp_path: Path,
    github: GitHubLoopback,
    sample_repo: Path,
) -> None:
    opened, release = threading.Event(), threading.Event()

    def hold_the_reply() -> None:
        opened.set()
        release.wait(timeout=60)

    github.after_pull_created = hold_the_reply
    script = write_script(
        tmp_path / "s.json",
        {
            "planner": [planner_run()],
            "coder": [coder_run(FIXED)],
            "tester": [tester_run()],
            "reviewer": [reviewer_run()],
        },
    )
    env = {"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": github.base_url}
    first = start_worker(workers, dev_env, tmp_path, **env)
    workflow_id = f"e2e-gh-{uuid.uuid4().hex[:6]}"
    cli = forgeflow_run(dev_env, tmp_path, workflow_id, script)  # follows the run until it ends

    assert await asyncio.to_thread(opened.wait, 120), "the pull request was never created"
    first.kill9()  # GitHub has opened the PR; the activity never reports it
    release.set()
    github.after_pull_created = None
    start_worker(workers, dev_env, tmp_path, **env)

    handle = dev_env.client.get_workflow_handle(workflow_id, result_type=IssueResult)
    result = await asyncio.wait_for(handle.result(), timeout=240)
    assert result.outcome == Outcome.APPROVED
    assert len(github.pulls) == 1  # the retried publish found the PR instead of opening another
    (number,) = github.pulls
    assert len(github.reviews[number]) == 1 and result.state.prs_created == [
        f"https://github.test/acme/calc/pull/{number}"
    ]
    assert git(sample_repo, "rev-list", "--count", f"main..forgeflow/{workflow_id}") == "1"
    assert TOKEN not in (tmp_path / "worker.log").read_text()  # the workers never logged the token
    out, _ = await asyncio.to_thread(cli.communicate, timeout=120)
    assert cli.returncode == 0 and "approved" in out, out  # `forgeflow run` saw it through, across the crash


async def test_plan_mode_started_with_the_temporal_cli_on_github(
    dev_env: WorkflowEnvironment, workers: list[WorkerProcess], tmp_path: Path, github: GitHubLoopback
) -> None:
    script = write_script(tmp_path / "s.json", {"planner": [planner_run()]})
    start_worker(workers, dev_env, tmp_path, GITHUB_TOKEN=TOKEN, GITHUB_API_URL=github.base_url)
    workflow_id = f"e2e-gh-plan-{uuid.uuid4().hex[:6]}"
    params = {"repo": "acme/calc", "issue_number": 7, "mode": "plan", "model_script": script}
    temporal_cli(
        dev_env, "workflow", "start", "--type", "IssueWorkflow", "--task-queue", "forgeflow",
        "--workflow-id", workflow_id, "--input", json.dumps(params),
    )  # fmt: skip
    handle = dev_env.client.get_workflow_handle(workflow_id, result_type=IssueResult)
    assert (await asyncio.wait_for(handle.result(), timeout=120)).outcome == Outcome.PLANNED
    (comment,) = github.issues[7].comments
    assert "## Plan" in comment["body"] and f"forgeflow:{workflow_id}:plan" in comment["body"]


def forgeflow_run(dev_env: WorkflowEnvironment, tmp_path: Path, workflow_id: str, script: str) -> subprocess.Popen[str]:
    """`forgeflow run --repo acme/calc --issue 7`, as a person would type it; it follows the run to its end."""
    address = dev_env.client.service_client.config.target_host
    env = {**os.environ, "TEMPORAL_ADDRESS": address, "FORGEFLOW_DATA_DIR": str(tmp_path / "cli"), "COLUMNS": "200"}
    argv = [sys.executable, "-m", "starter", "run", "--repo", "acme/calc", "--issue", "7", "--script", script,
            "--workflow-id", workflow_id]  # fmt: skip
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
