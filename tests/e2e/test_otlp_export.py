"""The worker as deployed (`python worker.py`), configured only by environment variables: spans
leave over OTLP/HTTP to a loopback collector, metrics are scraped from its Prometheus endpoint."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from temporalio.testing import WorkflowEnvironment

from contracts.run import IssueResult, Outcome
from starter.sample import create_sample_repo, demo_input
from tests.e2e.conftest import WorkerProcess, start_worker, wait_until
from tests.telemetry.test_observability import _free_port, scrape

pytestmark = pytest.mark.e2e


class Collector:
    """Just enough of an OpenTelemetry collector: POST /v1/traces with protobuf bodies."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, dict[str, object]]] = []
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
                                collector.spans.append((span.name, attrs))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.server.shutdown()


async def test_worker_exports_traces_over_otlp_and_serves_metrics(
    dev_env: WorkflowEnvironment, workers: list[WorkerProcess], tmp_path: Path, collector: Collector
) -> None:
    port = _free_port()
    start_worker(
        workers, dev_env, tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.url, OTEL_BSP_SCHEDULE_DELAY="200",
        FORGEFLOW_METRICS_PROMETHEUS=f"127.0.0.1:{port}",
    )  # fmt: skip
    repo = create_sample_repo(tmp_path / "textkit")
    handle = await dev_env.client.start_workflow(
        "IssueWorkflow", demo_input(repo), id=f"e2e-otlp-{uuid.uuid4().hex[:8]}", task_queue="forgeflow",
        result_type=IssueResult,
    )  # fmt: skip
    result = await asyncio.wait_for(handle.result(), timeout=180)
    assert result.outcome == Outcome.APPROVED

    def all_chats_exported() -> bool:
        return sum(name == "chat scripted-replay" for name, _ in collector.spans) == 19

    await asyncio.to_thread(wait_until, all_chats_exported, timeout=30, what="the worker's spans at the collector")
    names = {name for name, _ in collector.spans}
    assert {"RunWorkflow:IssueWorkflow", "RunActivity:model_turn", "sandbox run_tests", "tool str_replace"} <= names
    chat_attrs = next(attrs for name, attrs in collector.spans if name == "chat scripted-replay")
    assert chat_attrs["gen_ai.request.model"].string_value == "scripted-replay"  # type: ignore[attr-defined]

    metrics = await asyncio.to_thread(scrape, port)
    runs = [line for line in metrics.splitlines() if line.startswith("forgeflow_runs{")]
    assert any('outcome="approved"' in line and line.endswith(" 1") for line in runs), runs
    assert "forgeflow_model_latency" in metrics and "temporal_" in metrics
