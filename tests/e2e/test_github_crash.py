"""A GitHub run whose worker is killed -9 ten times, each at a chosen moment: it recovers in seconds.

The run is started with `forgeflow run` against a GitHub repository (the loopback GitHub, real git
behind it), workers are real `python worker.py` processes on the dev server, and the model is a
scripted replay. Each kill interrupts a different kind of call (tests/e2e/recovery.py says how each
moment is caught); a new worker starts at once. The run must end approved with no human, with every
write done once, no completed model turn asked twice, and every recovery through a heartbeat
timeout (a local activity, a quick code-host call: through its workflow task's timeout). The time
each recovery took is printed, not asserted.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from contracts.run import IssueResult, Outcome
from testkit.loopback.github_api import GitHubLoopback
from testkit.scripts import coder_run, planner_run, reviewer_run, tester_run, write_script
from testkit.tools import git
from tests.e2e.conftest import E2E_GITHUB_TOKEN, ROOT, WorkerProcess, start_worker, temporal_cli, wait_until
from tests.e2e.recovery import (
    LOST_WITH_WORKFLOW_TASK,
    Hold,
    Moment,
    histories,
    ledger_has,
    marked_process,
    recoveries,
    remove_cgroups,
    running_on,
    running_task_on,
    scheduled_heartbeats,
)
from workflows.activity_calls import SANDBOX_RETRY

pytestmark = pytest.mark.e2e
TOKEN = E2E_GITHUB_TOKEN
FIXED = "def add(a, b):\n    return a + b\n\n\ndef subtract(a, b):\n    return a - b\n"
MARKER = "forgeflow_kill_marker_7731"  # on a process of the sandboxed tests: the sandbox is caught mid-run
SLOW_TEST = (
    f"import subprocess\n\n\ndef test_takes_a_moment():\n    subprocess.run(['sh', '-c', 'sleep 2; : {MARKER}'])\n"
)
MODEL_DELAY = {"FORGEFLOW_SCRIPT_DELAY": "2"}  # seconds a scripted turn takes while one is to be caught
TARBALL = ("GET", "/tarball/[0-9a-f]+")

MOMENTS = [
    Moment("code host: fetch_task, waiting for the issue", "fetch_task", hold=("GET", "/issues/7"), local=True),
    Moment("model: the planner's first turn", "model_turn", model_turn=("planner", 0)),
    Moment("model: the planner's second turn", "model_turn", model_turn=("planner", 1)),
    # A turn that only reads (the coder's first) runs its reads inside its model turn, after the
    # answer was kept: the retry takes the kept answer and reads again, and never asks the model again.
    Moment("tool: read_file in its turn, downloading the commit", "model_turn", hold=TARBALL, cold_cache=True),
    Moment("model: the coder's second turn", "model_turn", model_turn=("coder", 1)),
    Moment("code host: land_changes, GitHub created the branch", "land_changes", hold=("POST", "/git/refs")),
    Moment("code host: publish_change, GitHub opened the PR", "publish_change", hold=("POST", "/pulls")),
    Moment("sandbox: run_tests, attempt 1", "run_tests"),
    Moment("sandbox: run_tests, attempt 2 of 2", "run_tests", attempt=2),
    Moment(
        "code host: post_review, GitHub stored the review",
        "post_review",
        hold=("POST", r"/pulls/\d+/reviews"),
        local=True,
    ),
]
LAST_MODEL_MOMENT = max(n for n, moment in enumerate(MOMENTS) if moment.model_turn)


@pytest.fixture
def killed_runs() -> Iterator[list[Path]]:
    """Cgroups of sandboxed runs whose worker was killed: removed after each kill, and again at the
    end should the test stop between a kill and its cleanup."""
    groups: list[Path] = []
    yield groups
    remove_cgroups(groups)


@pytest.mark.long
@pytest.mark.timeout(480)  # about 2 minutes on an idle machine; several times that under load
async def test_ten_kills_during_one_github_run_each_recover_in_seconds_with_no_human(
    dev_env: WorkflowEnvironment,
    workers: list[WorkerProcess],
    tmp_path: Path,
    github: GitHubLoopback,
    sample_repo: Path,
    record_property: Callable[[str, object], None],
    killed_runs: list[Path],
) -> None:
    (sample_repo / "tests" / "test_slow.py").write_text(SLOW_TEST)
    git(sample_repo, "add", "-A")
    git(sample_repo, "commit", "-qm", "a test that takes a moment")
    agents = {"planner": [planner_run()], "coder": [coder_run(FIXED)], "tester": [tester_run()]}
    script = write_script(tmp_path / "s.json", {**agents, "reviewer": [reviewer_run()]})
    ledger = tmp_path / "model-requests.jsonl"
    env = {"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": github.base_url, "FORGEFLOW_SCRIPT_LEDGER": str(ledger)}
    workflow_id = f"e2e-gh-kills-{uuid.uuid4().hex[:6]}"

    # Two workers, as in production: the survivor takes the lost call over; each killed one is
    # replaced at once.
    kills, cli = await _kill_at_each_moment(dev_env, workers, tmp_path, github, env, workflow_id, script, killed_runs)
    handle = dev_env.client.get_workflow_handle(workflow_id, result_type=IssueResult)
    result = await asyncio.wait_for(handle.result(), timeout=240)
    run_histories = await histories(dev_env.client, workflow_id)

    # Unattended: approved, no signal or update from anyone, no escalation posted.
    assert result.outcome == Outcome.APPROVED and result.state.human_feedback == []
    (own,) = [h for h in run_histories if h.workflow_id == workflow_id]
    human = {EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED}
    assert not [e for e in own.events if e.event_type in human]
    assert github.issues[7].comments == []
    _assert_written_once(github, sample_repo, result, workflow_id)

    # No completed model turn asked twice: only the two in flight when their worker died.
    asked = Counter(
        (r["role"], r["invocation"], r["turn"])
        for r in map(json.loads, ledger.read_text().splitlines())
        if r["run_id"] == workflow_id
    )
    in_flight = {(m.model_turn[0], 0, m.model_turn[1]) for m in MOMENTS if m.model_turn}
    assert {key for key, n in asked.items() if n > 1} == in_flight and max(asked.values()) == 2

    for n, seconds in enumerate(_recovered_by_heartbeats(kills, run_histories), 1):
        record_property(f"recovery_{n}_seconds", round(seconds, 1))  # into the JUnit report
    assert TOKEN not in (tmp_path / "worker.log").read_text()  # the workers never logged the token
    out, _ = await asyncio.to_thread(cli.communicate, timeout=120)
    assert cli.returncode == 0 and "approved" in out, out  # `forgeflow run` saw it through, across the crashes


async def _kill_at_each_moment(
    dev_env: WorkflowEnvironment,
    workers: list[WorkerProcess],
    tmp_path: Path,
    github: GitHubLoopback,
    env: dict[str, str],
    workflow_id: str,
    script: str,
    killed_runs: list[Path],
) -> tuple[list[datetime], subprocess.Popen[str]]:
    """Start the run with `forgeflow run`, kill the worker running each moment's activity, replace it;
    returns when each kill happened, and the CLI following the run. Workers alive while a model
    turn is to be caught answer slowly."""
    alive = [start_worker(workers, dev_env, tmp_path, **env, **MODEL_DELAY) for _ in range(2)]
    cli = None
    kills: list[datetime] = []
    ledger = Path(env["FORGEFLOW_SCRIPT_LEDGER"])
    for n, moment in enumerate(MOMENTS):
        hold = Hold(*moment.hold) if moment.hold else None
        github.hold = hold
        if moment.cold_cache:  # no worker is running a call now: the run waits for the lost one
            shutil.rmtree(tmp_path / "data" / "repos", ignore_errors=True)
        if cli is None:
            cli = forgeflow_run(dev_env, tmp_path, workflow_id, script)  # follows the run until it ends
        victim = _process_of(await _caught(dev_env, moment, hold, ledger, workflow_id), alive)
        if moment.activity == "run_tests":  # caught with the tests running, in the run's cgroups
            running = partial(marked_process, MARKER)
            _, groups = await asyncio.to_thread(wait_until, running, timeout=60, what="the tests to run")
            killed_runs.extend(groups)
        kills.append(datetime.now(UTC))
        victim.kill9()
        alive.remove(victim)
        await asyncio.to_thread(remove_cgroups, killed_runs)  # the killed worker never will
        if hold is not None:
            hold.release.set()
        alive.append(start_worker(workers, dev_env, tmp_path, **env, **(MODEL_DELAY if n < LAST_MODEL_MOMENT else {})))
    github.hold = None
    assert cli is not None
    return kills, cli


def _assert_written_once(github: GitHubLoopback, repo: Path, result: IssueResult, workflow_id: str) -> None:
    """Exactly-once writes: one PR, one review, one push (one commit) per round."""
    assert len(github.pulls) == 1  # the retried publish found the PR instead of opening another
    (number,) = github.pulls
    assert len(github.reviews[number]) == 1
    assert result.state.prs_created == [f"https://github.test/acme/calc/pull/{number}"]
    assert result.state.round == 1 and len(result.state.commits) == 1
    assert git(repo, "rev-list", "--count", f"main..forgeflow/{workflow_id}") == "1"
    writes = Counter(request for request in github.requests if request[0] in ("POST", "PATCH"))
    assert writes[("POST", "/repos/acme/calc/git/refs")] == 1 and writes[("POST", "/repos/acme/calc/pulls")] == 1
    assert writes[("POST", f"/repos/acme/calc/pulls/{number}/reviews")] == 1
    assert not [path for method, path in writes if method == "PATCH" and "/git/refs/" in path]


def _recovered_by_heartbeats(kills: list[datetime], run_histories: list[WorkflowHistory]) -> list[float]:
    """Each kill was recovered once, through a heartbeat timeout, in the activity it interrupted (a
    local activity: through its workflow task's timeout); prints and returns the seconds from each
    kill to the next attempt's start (not asserted)."""
    found = sorted((r for h in run_histories for r in recoveries(h)), key=lambda r: r.next_started)
    assert len(found) == len(kills), found
    print(f"\n{'moment':52} {'activity':15} {'lost by':13} {'recovered in':>12}")
    took = []
    for n, (moment, killed, recovery) in enumerate(zip(MOMENTS, kills, found, strict=True)):
        took.append((recovery.next_started - killed).total_seconds())
        again = " (scheduled again)" if recovery.rescheduled else ""
        print(f"{moment.what:52} {recovery.activity:15} {recovery.lost_by:13} {took[-1]:>10.1f} s{again}")
        assert recovery.activity == moment.activity
        assert recovery.lost_by == (LOST_WITH_WORKFLOW_TASK if moment.local else "HEARTBEAT"), moment.what
        assert killed < recovery.next_started and (n + 1 == len(kills) or recovery.next_started < kills[n + 1])
    rescheduled = [m.activity == "run_tests" and m.attempt == SANDBOX_RETRY.maximum_attempts for m in MOMENTS]
    assert [r.rescheduled for r in found] == rescheduled
    for h in run_histories:
        for activity, (heartbeat, start_to_close) in scheduled_heartbeats(h).items():
            assert 0 < heartbeat < start_to_close, activity  # a dead worker shows long before start-to-close
    return took


async def _caught(
    dev_env: WorkflowEnvironment, moment: Moment, hold: Hold | None, ledger: Path, workflow_id: str
) -> int:
    """Once the run is at `moment`: the pid of the worker process running the moment's activity."""
    if hold is not None:
        assert await asyncio.to_thread(hold.reached.wait, 120), f"never reached: {moment.what}"
    elif moment.model_turn is not None:
        role, turn = moment.model_turn
        await asyncio.to_thread(
            wait_until, lambda: ledger_has(ledger, workflow_id, role, turn), timeout=120, what=moment.what
        )
    # The agents run inside the run: every activity and workflow task of theirs is the run's.
    if moment.local:
        return await running_task_on(dev_env.client, workflow_id, within=120)
    return await running_on(dev_env.client, workflow_id, moment.activity, moment.attempt, within=120)


def _process_of(pid: int, alive: list[WorkerProcess]) -> WorkerProcess:
    """The worker whose process group holds `pid` (a sandbox worker is its worker's child)."""
    (found,) = [worker for worker in alive if worker.proc.pid == os.getpgid(pid)]
    return found


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
