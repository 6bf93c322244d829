"""Traces and metrics are off unless configured, and configured by the standard variables."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode
from temporalio.contrib.opentelemetry import TracingInterceptor

from config.settings import Settings
from contracts.run import OrchestrationState
from contracts.usage import AgentUsage, Usage
from starter.render import console, summary
from telemetry.logs import agent_of
from telemetry.setup import RedactingSpanExporter, metrics_runtime, tracing_configured, tracing_interceptors


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://collector:4318"}, False),  # metrics only
    ],
)
def test_tracing_is_off_unless_an_exporter_is_configured(env: dict[str, str], on: bool) -> None:
    assert tracing_configured(env) is on


def test_one_tracing_interceptor() -> None:
    (interceptor,) = tracing_interceptors()
    assert isinstance(interceptor, TracingInterceptor)


PLANTED = "planted-value-0123456789"
TOKEN = "ghp_" + "b" * 36


def test_spans_reach_the_exporter_redacted() -> None:
    """Attributes, an exception event's message and stack trace, and the status description."""
    exported = InMemorySpanExporter()
    provider = TracerProvider()  # not the global one: this test owns its pipeline
    provider.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(exported, [PLANTED])))
    with provider.get_tracer("t").start_as_current_span("tool run_command", record_exception=False) as span:
        span.set_attributes({"command": f"curl -H 'x-key: {PLANTED}'", "args": ["--token", TOKEN], "exit": 1})
        span.record_exception(RuntimeError(f"GitHub said 401 for {TOKEN}"))
        span.set_status(Status(StatusCode.ERROR, f"failed with Authorization: token {PLANTED}"))
    provider.shutdown()
    (finished,) = exported.get_finished_spans()
    assert finished.attributes == {
        "command": "curl -H 'x-key: [redacted]'",
        "args": ("--token", "[redacted]"),
        "exit": 1,
    }
    (event,) = finished.events
    assert (
        event.name == "exception" and (event.attributes or {})["exception.message"] == "GitHub said 401 for [redacted]"
    )
    assert finished.status.description == "failed with Authorization: token [redacted]"
    text = finished.to_json()
    assert PLANTED not in text and TOKEN not in text and "exception.stacktrace" in text


def test_no_metrics_runtime_unless_configured() -> None:
    assert metrics_runtime(Settings(), env={}) is None


@pytest.mark.parametrize(
    ("workflow_id", "agent"),
    [("run-1", None), ("run-1.coder-2", "coder"), ("forgeflow-x-1.tester-1", "tester"), ("a.b.c", None)],
)
def test_agent_from_workflow_id(workflow_id: str, agent: str | None) -> None:
    assert agent_of(workflow_id) == agent


def test_status_shows_cost_by_round() -> None:
    st = OrchestrationState(workflow_id="run-1", repo="/r", mode="autonomous", max_retries=3)
    st.usage.add("planner", AgentUsage(usage=Usage(input_tokens=10), cost_usd=0.01, turns=1), round_no=0)
    st.usage.add("coder", AgentUsage(usage=Usage(input_tokens=20), cost_usd=0.02, turns=2), round_no=1)
    st.usage.add("tester", AgentUsage(usage=Usage(input_tokens=30), cost_usd=0.03, turns=1), round_no=1)
    with console.capture() as captured:
        console.print(summary(st, "run-1", Settings()))
    text = captured.get()
    assert "cost · planning" in text and "$0.0100 (planner $0.0100)" in text
    assert "cost · round 1" in text and "$0.0500 (coder $0.0200, tester $0.0300)" in text
