"""Traces across a worker restart on the dev server: replay opens no span a second time."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from contracts.run import GateDecision, IssueResult, Outcome
from starter.sample import SCRIPT, create_sample_repo, demo_input
from starter.workers import build_workers
from telemetry.setup import tracing_interceptors
from tests.telemetry.test_observability import _tree_is_connected
from tests.workflows.test_issue_workflow import wait_for_gate

pytestmark = pytest.mark.e2e


async def test_a_worker_restart_adds_no_duplicate_spans(
    dev_env: WorkflowEnvironment, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    """Stop the workers at the plan gate and start new ones: they replay the history to go on, and
    replay opens no span a second time."""
    client = await Client.connect(
        dev_env.client.service_client.config.target_host,
        interceptors=tracing_interceptors(),
        data_converter=pydantic_data_converter,
    )
    repo = create_sample_repo(tmp_path / "textkit")
    queue = f"restart-{uuid.uuid4().hex[:6]}"
    settings = Settings.model_validate({"FORGEFLOW_DATA_DIR": str(tmp_path / "data"), "FORGEFLOW_TASK_QUEUE": queue})
    first = build_workers(client, settings)
    async with first[0], first[1]:
        handle = await client.start_workflow(
            "IssueWorkflow", demo_input(repo, require_plan_approval=True), id=f"restart-{uuid.uuid4().hex[:6]}",
            task_queue=queue, result_type=IssueResult,
        )  # fmt: skip
        await wait_for_gate(handle, "plan_approval")
    before = Counter(s.name for s in spans.get_finished_spans())
    second = build_workers(client, settings)
    async with second[0], second[1]:
        await handle.signal("approve", GateDecision(decision="approve"))
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    everything = list(spans.get_finished_spans())
    (start,) = [s for s in everything if s.name == "StartWorkflow:IssueWorkflow"]
    finished = [s for s in everything if s.context.trace_id == start.context.trace_id]
    others = {s.name.split(":")[0] for s in everything if s not in finished}
    assert others <= {"QueryWorkflow", "HandleQuery", "SignalWorkflow", "HandleSignal"}  # the test's own calls
    _tree_is_connected(finished)
    names = Counter(s.name for s in finished)
    assert names["RunWorkflow:IssueWorkflow"] == before["RunWorkflow:IssueWorkflow"] == 1
    turns = {
        role: sum(len(run["turns"]) for run in runs) for role, runs in json.loads(SCRIPT.read_text())["agents"].items()
    }
    assert before["chat scripted-replay"] == turns["planner"]  # the planner's turns, before the restart
    assert names["chat scripted-replay"] == sum(turns.values()) == 19  # every turn once, none again on replay
    assert names["RunActivity:model_turn"] == 19 and names["RunWorkflow:IssueWorkflow"] == 1
