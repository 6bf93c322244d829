"""`forgeflow eval --sample` on the real dev server with real worker processes: the bundled suite's
two instances run from the recorded replay and are graded in the bubblewrap sandbox, one resolved
and one not, and the results are written as files SWE-bench's harness reads. One of the two
workers is killed mid-eval: the eval finishes on the other with each instance run and graded once."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from starter.eval_sample import HIDDEN
from testkit.tools import git
from tests.e2e.conftest import WorkerProcess, start_worker

pytestmark = pytest.mark.e2e
PREDICTION_FIELDS = {"instance_id", "model_name_or_path", "model_patch"}  # SWE-bench's harness reads these


async def _eval_started(dev_env: WorkflowEnvironment) -> str:
    """The id of the eval the CLI started, once it runs."""
    for _ in range(600):
        async for run in dev_env.client.list_workflows('WorkflowType="EvalWorkflow" AND ExecutionStatus="Running"'):
            return run.id
        await asyncio.sleep(0.1)
    raise AssertionError("no eval started")


async def _children_running(dev_env: WorkflowEnvironment, eval_id: str) -> None:
    """Until both of the eval's runs have started."""
    query = f'WorkflowType="IssueWorkflow" AND WorkflowId STARTS_WITH "{eval_id}."'
    for _ in range(600):
        if len([run async for run in dev_env.client.list_workflows(query)]) == 2:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the runs of {eval_id} did not start")


async def test_the_bundled_suite_is_graded_both_ways_and_written_as_swe_bench_predictions(
    dev_env: WorkflowEnvironment, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    # Two workers (each with its sandbox worker as a child), as in production: one is killed mid-eval.
    doomed, _ = (start_worker(workers, dev_env, tmp_path, log_name=f"worker-{n}.log") for n in range(2))
    out = tmp_path / "out"
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "FORGEFLOW_DATA_DIR": str(tmp_path / "data"),  # the workers' own: the suite goes to their store
    }
    command = [sys.executable, "-m", "starter", "eval", "--sample", "--out", str(out), "--concurrency", "2"]
    cli = await asyncio.to_thread(
        subprocess.Popen, command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    eval_id = await _eval_started(dev_env)
    await _children_running(dev_env, eval_id)  # both instances' runs are under way
    doomed.kill9()
    assert cli.poll() is None  # the eval had not ended when its worker was killed
    output, _ = await asyncio.to_thread(cli.communicate, timeout=300)
    done = subprocess.CompletedProcess(command, cli.returncode, output, "")
    assert done.returncode == 0, done.stdout
    assert "default: resolved 1 of 2 (50%)" in " ".join(done.stdout.split())

    (summary,) = json.loads((out / "summary.json").read_text())
    assert (summary["instances"], summary["resolved"], summary["graded"]) == (2, 1, 2)
    results = {p.name: json.loads(p.read_text()) for p in (out / "instances").iterdir()}
    resolved = results["default.textkit__slugify-max-length.json"]
    refused = results["default.textkit__slugify-max-length-zero.json"]
    assert resolved["resolved"] and resolved["outcome"] == "approved" and resolved["rounds"] == 1
    assert not refused["resolved"]
    assert refused["grade"]["fail_to_pass"] == {"tests/test_hidden_zero.py::test_a_zero_length_is_refused": "failed"}
    assert set(refused["grade"]["pass_to_pass"].values()) == {"passed"}

    predictions = [json.loads(line) for line in (out / "predictions.default.jsonl").read_text().splitlines()]
    assert [set(p) for p in predictions] == [PREDICTION_FIELDS, PREDICTION_FIELDS]
    (repo,) = (tmp_path / "data" / "eval").glob("sample-*/textkit")
    check = tmp_path / "check"
    git(tmp_path, "clone", "-q", str(repo), str(check))
    for number, prediction in enumerate(predictions):
        (check / f"{number}.patch").write_text(prediction["model_patch"])
        git(check, "apply", "--check", f"{number}.patch")  # a unified diff git applies on base_commit
    assert "| default | 1 of 2 | 50% |" in (out / "report.md").read_text()
    assert (out / "chart.svg").read_bytes().startswith(b"<?xml")  # the report's chart of cost against resolution

    # Each instance was run once and graded once, whatever the killed worker had been doing.
    events = list((await dev_env.client.get_workflow_handle(eval_id).fetch_history()).events)
    started = [e for e in events if e.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED]
    scheduled = Counter(
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    )
    assert len(started) == 2 and scheduled == {"load_suite": 1, "commit_snapshot": 2, "run_tests": 2}

    # The hidden tests are in no history (the eval's and its 2 runs', their agents' turns in them) and in
    # no model request (the transcripts in the store): only the suite file, the suite's blob and the
    # patches' own.
    histories = []
    async for run in dev_env.client.list_workflows(f'WorkflowId STARTS_WITH "{eval_id}"'):
        histories.append((await dev_env.client.get_workflow_handle(run.id).fetch_history()).to_json())
    assert len(histories) == 1 + 2
    assert not [h for h in histories if HIDDEN in h]
    holding = [p for p in (tmp_path / "data").rglob("*") if p.is_file() and HIDDEN.encode() in p.read_bytes()]
    kinds = sorted("patch" if p.read_bytes().startswith(b"diff --git") else p.suffix or "suite" for p in holding)
    assert kinds == [".jsonl", "patch", "patch", "suite"], holding
