"""A whole run on Claude (the real `anthropic` client against the loopback API, the real sandbox and
git), observed the way an operator would: one trace in an in-memory exporter, metrics scraped from
the worker runtime's real Prometheus endpoint, JSON log lines — and a planted secret in none of
them, nor in the run's history."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import socket
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment

from contracts.run import IssueResult, Outcome
from starter.sample import SPEC, create_sample_repo
from starter.workers import build_workers
from telemetry.logs import SHORT, configure_logging
from telemetry.setup import tracing_interceptors
from testkit.loopback.anthropic_api import AnthropicLoopback
from tests.workflows.test_claude_run import claude_settings, recorded_replies

PLANTED = "sk-ant-planted-0123456789abcdef"


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Worker-style JSON logging into a buffer; the process's logging is restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging(json=True, secrets=[PLANTED], stream=stream)
    yield stream
    structlog.reset_defaults()
    root.handlers[:], root.level = handlers, level


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


async def scrape_once_sdk_counted(port: int) -> str:
    """The metrics once the SDK has counted the run's completion.

    The client learns the result when the server records it, which can be a moment before the
    worker's SDK has counted its own workflow_completed; so scrape until it has (10 s at most).
    """
    deadline = time.monotonic() + 10
    while True:
        text = scrape(port)
        if "workflow_completed" in text or time.monotonic() > deadline:
            return text
        await asyncio.sleep(0.1)


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Prometheus text-format samples of one metric: (labels, value)."""
    found = []
    for match in re.finditer(rf"^{name}(?:\{{(.*?)\}})? (\S+)$", text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        found.append((labels, float(match.group(2))))
    return found


def _tree_is_connected(finished: list[ReadableSpan]) -> ReadableSpan:
    """One trace; every span's parent is in it; returns the root."""
    assert len({s.context.trace_id for s in finished}) == 1, "all spans belong to one trace"
    ids = {s.context.span_id for s in finished}
    roots = [s for s in finished if s.parent is None]
    assert len(roots) == 1, [r.name for r in roots]
    assert all(s.parent is None or s.parent.span_id in ids for s in finished)
    return roots[0]


def _ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    names = []
    while span.parent is not None:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


async def test_one_run_one_trace_metrics_and_logs_with_no_secret(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, spans: InMemorySpanExporter, json_logs: io.StringIO
) -> None:
    port = _free_port()
    runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"127.0.0.1:{port}")))
    client = await Client.connect(
        time_skipping_env.client.service_client.config.target_host,
        runtime=runtime,
        interceptors=tracing_interceptors(),
        data_converter=pydantic_data_converter,
    )
    logs = json_logs
    repo = create_sample_repo(tmp_path / "textkit")
    queue = f"observed-{uuid.uuid4().hex[:6]}"
    with AnthropicLoopback() as api:
        api.replies = recorded_replies()
        settings = claude_settings(tmp_path, queue, api, key=PLANTED)
        workers = build_workers(client, settings)
        async with workers[0], workers[1]:
            run_id = f"observed-{uuid.uuid4().hex[:6]}"
            result = await client.execute_workflow(
                "IssueWorkflow",
                {"repo": str(repo), "spec_content": SPEC.read_text()},
                id=run_id,
                task_queue=queue,
                result_type=IssueResult,
            )
        metrics = await scrape_once_sdk_counted(port)
    assert result.outcome == Outcome.APPROVED
    assert api.requests and all(PLANTED in str(r.headers) for r in api.requests)  # it was used...
    st = result.state

    # --- one connected trace, from the start of the run to the review --------------------------------
    finished = list(spans.get_finished_spans())
    root = _tree_is_connected(finished)
    assert root.name == "StartWorkflow:IssueWorkflow"
    by_id = {s.context.span_id: s for s in finished}
    names = Counter(s.name for s in finished)
    assert names["RunWorkflow:IssueWorkflow"] == 1
    # The agents run inside the run: each activity's span names the agent it worked for.
    turns = [s for s in finished if s.name == "RunActivity:model_turn"]
    assert len(turns) == 19
    assert {(s.attributes or {}).get("forgeflow.agent") for s in turns} == {"planner", "coder", "tester", "reviewer"}
    chats = [s for s in finished if s.name == "chat claude-sonnet-4-6"]
    assert len(chats) == len(api.requests) == 19
    for chat in chats:
        attrs = chat.attributes or {}
        assert attrs["gen_ai.system"] == "anthropic" and attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.request.model"] == attrs["gen_ai.response.model"] == "claude-sonnet-4-6"
        assert isinstance(attrs["gen_ai.usage.input_tokens"], int) and attrs["gen_ai.usage.output_tokens"] > 0
        assert "gen_ai.usage.cache_read.input_tokens" in attrs and attrs["gen_ai.response.finish_reasons"]
        assert "RunActivity:model_turn" in _ancestors(chat, by_id)
        assert _ancestors(chat, by_id)[-2:] == ["StartActivity:model_turn", "StartWorkflow:IssueWorkflow"]
    assert sum(float(c.attributes["forgeflow.cost_usd"]) for c in chats) == pytest.approx(st.usage.total_cost_usd)  # type: ignore[arg-type, index]
    # The anthropic SDK's own span of each HTTP call sits under ours, with the wire details.
    sdk_calls = [s for s in finished if s.name == "anthropic.messages.create"]
    assert len(sdk_calls) == 19 and all(_ancestors(s, by_id)[0].startswith("chat ") for s in sdk_calls)
    assert {(s.attributes or {}).get("http.response.status_code") for s in sdk_calls} == {200}
    tools = [s for s in finished if s.name.startswith("tool ")]
    assert {s.attributes["forgeflow.tool.outcome"] for s in tools} <= {"ok", "error"}  # type: ignore[index]
    assert {"tool str_replace", "tool read_file"} <= {s.name for s in tools}
    sandbox = [s for s in finished if s.name == "sandbox run_tests"]
    assert [s.attributes["forgeflow.tests.status"] for s in sandbox][-1] == "passed"  # type: ignore[index]
    assert "RunActivity:run_tests" in _ancestors(sandbox[-1], by_id)
    assert {"code_host fetch_task", "code_host land_changes", "code_host publish_change"} <= set(names)

    # --- metrics, with their labels; cost and tokens add up to the run's own usage --------------------
    cost = samples(metrics, "forgeflow_cost_usd_sum")
    assert {labels["agent"] for labels, _ in cost} == {"planner", "coder", "tester", "reviewer"}
    assert sum(v for _, v in cost) == pytest.approx(st.usage.total_cost_usd)
    for role, spent in st.usage.by_agent.items():
        assert sum(v for labels, v in cost if labels["agent"] == role) == pytest.approx(spent.cost_usd)
        tokens = samples(metrics, "forgeflow_tokens")
        output = sum(v for labels, v in tokens if labels["agent"] == role and labels["kind"] == "output")
        assert output == spent.usage.output_tokens
    assert sum(v for _, v in samples(metrics, "forgeflow_model_latency_count")) == 19
    tool_labels = {labels["tool"] for labels, _ in samples(metrics, "forgeflow_tool_latency_count")}
    assert {"read_file", "str_replace"} <= tool_labels
    assert samples(metrics, "forgeflow_sandbox_latency_count")
    (run_count,) = samples(metrics, "forgeflow_run_duration_count")
    assert run_count[0]["outcome"] == "approved" and run_count[1] == 1
    agent_runs = samples(metrics, "forgeflow_agent_duration_count")
    assert {labels["agent"] for labels, _ in agent_runs} == {"planner", "coder", "tester", "reviewer"}
    assert sum(v for _, v in agent_runs) == 6  # planner, coder, tester, coder, tester, reviewer
    assert sum(v for _, v in samples(metrics, "forgeflow_retries")) == 1
    assert "temporal_workflow_completed" in metrics or "workflow_completed" in metrics  # the SDK's own

    # --- JSON log lines with the context fields --------------------------------------------------------
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    turns = [line for line in lines if line["event"] == "model turn"]
    assert len(turns) == 19
    for line in turns:
        assert line["workflow_id"] == run_id and line["run_id"]
        assert line["agent"] in {"planner", "coder", "tester", "reviewer"}
        assert line["activity_type"] == "model_turn" and line["attempt"] == 1
    stages = [line for line in lines if line["event"].startswith("stage: ")]
    assert stages and all(line["workflow_id"] == run_id and line["workflow_type"] == "IssueWorkflow" for line in stages)
    assert {line["stage"] for line in stages} >= {"planning", "coding", "testing", "reviewing"}
    tests_line = next(line for line in lines if line["event"] == "sandbox call")
    assert tests_line["agent"] == "tester" and tests_line["activity_type"] == "run_tests"
    # The HTTP client's own line per request (19 calls to Claude) is left out: the model turn has one.
    assert not [line for line in lines if str(line["event"]).startswith("HTTP Request:")]

    # --- the planted secret is nowhere --------------------------------------------------------------
    span_text = json.dumps([json.loads(s.to_json()) for s in finished])
    history = (await client.get_workflow_handle(run_id).fetch_history()).to_json()  # the agents' turns too
    assert "IssueWorkflow" in history and "model_turn" in history  # the run's history, with its agents' turns
    for where, text in (("logs", logs.getvalue()), ("spans", span_text), ("metrics", metrics), ("history", history)):
        assert PLANTED not in text, f"the secret leaked into {where}"


def test_the_redactor_takes_secrets_out_of_log_lines(json_logs: io.StringIO) -> None:
    logs = json_logs
    structlog.get_logger("t").info("calling", header=f"x-api-key: {PLANTED}", nested={"token": "ghp_" + "a" * 36})
    logging.getLogger("sdk").warning("auth failed for Bearer abcdefghijklmnopqrstuvwxyz012345")
    out = logs.getvalue()
    assert PLANTED not in out and "ghp_aaaa" not in out and "abcdefghijklmnop" not in out
    first, second = (json.loads(line) for line in out.splitlines())
    assert first["header"] == "x-api-key: [redacted]" and first["nested"] == {"token": "[redacted]"}
    assert second["event"] == "auth failed for [redacted]"


@pytest.mark.parametrize("padding", [0, SHORT])  # remembered once redacted, and too long to remember
def test_a_recurring_value_is_redacted_every_time(json_logs: io.StringIO, padding: int) -> None:
    value = f"key {PLANTED} " + "x" * padding
    for _ in range(3):
        structlog.get_logger("t").info("again", field=value, also=f"ghp_{'b' * 36}")
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    assert [(line["field"], line["also"]) for line in lines] == [(f"key [redacted] {'x' * padding}", "[redacted]")] * 3
