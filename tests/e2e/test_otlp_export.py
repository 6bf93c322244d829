"""The worker as deployed (`python worker.py`), configured only by environment variables: spans
leave over OTLP/HTTP to a loopback collector, metrics are scraped from its Prometheus endpoint.

The run is started by the real `temporal workflow start`, so it carries no trace context (as from
the Web UI, a schedule or a webhook): it must still be one trace, under a root span of its own."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from temporalio.testing import WorkflowEnvironment

from contracts.run import IssueResult, Outcome
from starter.sample import create_sample_repo, demo_input
from telemetry.run_trace import root_span_ids
from tests.e2e.conftest import WorkerProcess, start_worker, temporal_cli, wait_until
from tests.telemetry.test_observability import _free_port, scrape

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Exported:
    """One span as it reached the collector (ids as the wire carries them; no parent: b"")."""

    name: str
    attributes: dict[str, AnyValue]
    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes


class Collector:
    """Just enough of an OpenTelemetry collector: POST /v1/traces with protobuf bodies."""

    def __init__(self) -> None:
        self.spans: list[Exported] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/v1/traces":
                    request = ExportTraceServiceRequest.FromString(body)
                    for resource in request.resource_spans:
                        for scope in resource.scope_spans:
                            for span in scope.spans:
                                attrs = {a.key: a.value for a in span.attributes}
                                collector.spans.append(
                                    Exported(span.name, attrs, span.trace_id, span.span_id, span.parent_span_id)
                                )
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def names(self) -> Counter[str]:
        return Counter(s.name for s in list(self.spans))


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.server.shutdown()


def _ancestors(span: Exported, by_id: dict[bytes, Exported]) -> list[str]:
    names = []
    while span.parent_span_id:
        span = by_id[span.parent_span_id]
        names.append(span.name)
    return names


async def test_a_run_started_by_the_temporal_cli_is_one_trace_over_otlp_with_metrics(
    dev_env: WorkflowEnvironment, workers: list[WorkerProcess], tmp_path: Path, collector: Collector
) -> None:
    port = _free_port()
    start_worker(
        workers, dev_env, tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.url, OTEL_BSP_SCHEDULE_DELAY="200",
        FORGEFLOW_METRICS_PROMETHEUS=f"127.0.0.1:{port}",
    )  # fmt: skip
    repo = create_sample_repo(tmp_path / "textkit")
    workflow_id = f"e2e-otlp-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(
        temporal_cli, dev_env, "workflow", "start", "--type", "IssueWorkflow", "--task-queue", "forgeflow",
        "--workflow-id", workflow_id, "--input", json.dumps(demo_input(repo)),
    )  # fmt: skip
    handle = dev_env.client.get_workflow_handle(workflow_id, result_type=IssueResult)  # this client traces nothing
    result = await asyncio.wait_for(handle.result(), timeout=180)
    assert result.outcome == Outcome.APPROVED

    def all_exported() -> bool:
        names = collector.names()
        return names["chat scripted-replay"] == 19 and names["CompleteWorkflow:IssueWorkflow"] == 1

    await asyncio.to_thread(wait_until, all_exported, timeout=30, what="the worker's spans at the collector")
    spans = list(collector.spans)
    names = collector.names()
    print(f"{len(spans)} spans, {len({s.trace_id for s in spans})} trace(s)")

    # --- one trace, one root (the run's own), every parent in it -------------------------------------
    assert len({s.trace_id for s in spans}) == 1, Counter(s.trace_id.hex() for s in spans)
    (root,) = [s for s in spans if not s.parent_span_id]
    assert root.name == "WorkflowStarted:IssueWorkflow"
    assert root.attributes["temporalWorkflowID"].string_value == workflow_id
    run_id = root.attributes["temporalRunID"].string_value
    assert run_id == (await handle.describe()).run_id
    trace_id, span_id = root_span_ids(workflow_id, run_id)
    assert (root.trace_id, root.span_id) == (trace_id.to_bytes(16, "big"), span_id.to_bytes(8, "big"))
    by_id = {s.span_id: s for s in spans}
    assert all(not s.parent_span_id or s.parent_span_id in by_id for s in spans)

    # --- the run, its agents' activities (each span naming its agent) are all in it ------------------
    assert names["RunWorkflow:IssueWorkflow"] == 1
    turn_agents = {s.attributes["forgeflow.agent"].string_value for s in spans if s.name == "RunActivity:model_turn"}
    assert turn_agents == {"planner", "coder", "tester", "reviewer"}
    assert {"RunActivity:model_turn", "sandbox run_tests", "tool str_replace"} <= set(names)
    chat = next(s for s in spans if s.name == "chat scripted-replay")
    assert chat.attributes["gen_ai.request.model"].string_value == "scripted-replay"
    # The SDK hangs a workflow's spans (RunWorkflow, StartChildWorkflow, ...) on the workflow's context.
    (run,) = [s for s in spans if s.name == "RunWorkflow:IssueWorkflow"]
    assert run.parent_span_id == root.span_id
    assert _ancestors(chat, by_id)[-2:] == ["StartActivity:model_turn", "WorkflowStarted:IssueWorkflow"]
    sandbox = next(s for s in spans if s.name == "sandbox run_tests")  # exported by the sandbox process
    assert "RunActivity:run_tests" in _ancestors(sandbox, by_id)

    metrics = await asyncio.to_thread(scrape, port)
    runs = [line for line in metrics.splitlines() if line.startswith("forgeflow_runs{")]
    assert any('outcome="approved"' in line and line.endswith(" 1") for line in runs), runs
    assert "forgeflow_model_latency" in metrics and "temporal_" in metrics
