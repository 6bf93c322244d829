"""Three hosts, no shared disk (issue 13): a run outlives its worker and its worker's disk.

Three `python worker.py` processes play three hosts, each with its own data directory, HOME and
TMPDIR, sharing nothing but the Temporal server and an S3 store (moto's server, through the real
client): A and B serve the main queue, C only the sandbox queue. A GitHub run (the loopback GitHub,
real git behind it) starts; the main worker running the coder's second model turn is killed with
SIGKILL and its whole directory deleted. The other finishes the run. Exactly one pull request and one
review are written, no completed model turn is asked twice, and C, whose every file access is
logged by an audit hook, never touched a path under A's or B's directory, or the repository itself.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections import Counter
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from contracts.run import IssueInput, IssueResult, Outcome
from testkit.loopback.github_api import GitHubLoopback
from testkit.s3 import S3Server
from testkit.scripts import coder_run, planner_run, reviewer_run, tester_run, write_script
from tests.e2e.conftest import E2E_GITHUB_TOKEN, ROOT, WorkerProcess, wait_until
from tests.e2e.recovery import ledger_has, running_on

pytestmark = pytest.mark.e2e
TOKEN = E2E_GITHUB_TOKEN
FIXED = "def add(a, b):\n    return a + b\n\n\ndef subtract(a, b):\n    return a - b\n"
AUDIT = ROOT / "tests" / "e2e" / "file_audit.py"
KILLED_TURN = ("coder", 1)  # the coder's second turn: its first tool call already ran on the victim


def host(
    started: list[WorkerProcess],
    dev_env: WorkflowEnvironment,
    home: Path,
    env: dict[str, str],
    *args: str,
    wrapper: tuple[str, ...] = (),
) -> WorkerProcess:
    """A worker process as a host of its own: its data directory, HOME and TMPDIR all under `home`."""
    for folder in ("data", "home", "tmp"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    own = {"HOME": str(home / "home"), "TMPDIR": str(home / "tmp"), **env}
    address = dev_env.client.service_client.config.target_host
    worker = WorkerProcess(address, home / "data", home.parent / f"{home.name}.log", own, args, wrapper)
    started.append(worker)
    return worker


@pytest.mark.long
@pytest.mark.timeout(300)
async def test_a_run_survives_its_worker_and_its_disk_with_the_sandbox_on_a_third_host(
    dev_env: WorkflowEnvironment,
    workers: list[WorkerProcess],
    tmp_path: Path,
    github: GitHubLoopback,
    sample_repo: Path,
    s3: S3Server,
) -> None:
    shared = tmp_path / "shared"  # the test's own files (script, ledger): on no worker's host
    shared.mkdir()
    agents = {"planner": [planner_run()], "coder": [coder_run(FIXED)], "tester": [tester_run()]}
    script = write_script(shared / "script.json", {**agents, "reviewer": [reviewer_run()]})
    ledger = shared / "model-requests.jsonl"
    store = {"FORGEFLOW_STORAGE_URL": s3.url(f"three-hosts-{uuid.uuid4().hex[:6]}"), **s3.env}
    main = {
        **store,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_API_URL": github.base_url,
        "FORGEFLOW_SCRIPT_LEDGER": str(ledger),
        "FORGEFLOW_SCRIPT_DELAY": "1",  # a model turn takes a moment: one is caught in flight
    }
    dirs = {name: tmp_path / name for name in ("a", "b", "c")}
    audit = shared / "c-files.log"
    a = host(workers, dev_env, dirs["a"], main, "--queue", "forgeflow")
    b = host(workers, dev_env, dirs["b"], main, "--queue", "forgeflow")
    host(workers, dev_env, dirs["c"], store, "--queue", "forgeflow-sandbox", wrapper=(str(AUDIT), str(audit)))

    workflow_id = f"e2e-three-hosts-{uuid.uuid4().hex[:6]}"
    run = IssueInput(repo="acme/calc", issue_number=7, model_script=script)
    handle = await dev_env.client.start_workflow(
        "IssueWorkflow", run, id=workflow_id, task_queue="forgeflow", result_type=IssueResult
    )

    # The coder's second turn is in flight on A or B: that worker is "A" from here on.
    role, turn = KILLED_TURN
    await asyncio.to_thread(
        wait_until, lambda: ledger_has(ledger, workflow_id, role, turn), timeout=120, what="the coder's second turn"
    )
    pid = await running_on(dev_env.client, workflow_id, "model_turn", 1, within=60)  # the coder runs in the run
    (victim,) = [w for w in (a, b) if w.proc.pid == pid]
    survivor = b if victim is a else a
    victim.kill9()
    victim_dir = dirs["a"] if victim is a else dirs["b"]
    shutil.rmtree(victim_dir)  # its data directory, HOME and temporary files: the host is gone

    result = await asyncio.wait_for(handle.result(), timeout=180)
    assert result.outcome == Outcome.APPROVED, result
    assert survivor.proc.poll() is None and not victim_dir.exists()

    # Written once: one pull request, one review, one commit on the branch.
    assert len(github.pulls) == 1
    (number,) = github.pulls
    assert len(github.reviews[number]) == 1
    assert result.state.prs_created == [f"https://github.test/acme/calc/pull/{number}"]
    assert len(result.state.commits) == 1
    # The tests ran, on C, against the commit the run made (fetched by its tree id).
    assert result.state.test_results is not None and result.state.test_results.total > 0
    assert result.state.test_results.commit_sha == result.state.commits[0]

    # No completed model turn asked twice: only the one in flight when its worker died.
    asked = Counter(
        (r["role"], r["invocation"], r["turn"])
        for r in map(json.loads, ledger.read_text().splitlines())
        if r["run_id"] == workflow_id
    )
    assert {key for key, n in asked.items() if n > 1} == {(role, 0, turn)} and max(asked.values()) == 2

    # C worked (its own workspace is in the log) and never touched A's, B's or the repository's files.
    touched = audit.read_text().splitlines()
    assert any(str(dirs["c"] / "tmp") in line and "forgeflow-test-" in line for line in touched), touched[:20]
    forbidden = [str(dirs["a"]), str(dirs["b"]), str(sample_repo)]
    assert not [line for line in touched if any(path in line for path in forbidden)]
