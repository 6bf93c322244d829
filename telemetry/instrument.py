"""One place that turns an activity's model call, tool call, sandbox run or code-host call into a
span, metrics and a log line.

Spans go to the global OpenTelemetry tracer (the TracingInterceptor makes them children of the
activity's span, so a run is one trace). Metrics go through the activity's Temporal metric meter,
so they leave by the worker runtime's exporter (Prometheus or OTLP) with the SDK's own metrics.
Model-call spans carry the GenAI semantic-convention attributes.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from temporalio import activity
from temporalio.common import MetricMeter

from contracts.agents import ModelSpec
from contracts.model import ModelResponse
from telemetry.logs import agent_for

_log = structlog.get_logger("forgeflow")
_tracer = trace.get_tracer("forgeflow")
GEN_AI_SYSTEM = {"anthropic": "anthropic", "scripted": "forgeflow.scripted"}


def _meter() -> MetricMeter:
    return activity.metric_meter() if activity.in_activity() else MetricMeter.noop


def _agent() -> str:
    """The agent whose activity this is: its workflow's header, or its workflow id (`<run>.<agent>-<n>`,
    a run recorded with agents as children), else `run`."""
    if not activity.in_activity():
        return "run"
    return agent_for(activity.info().workflow_id or "") or "run"


def record_command(status: str, exit_code: int | None, seconds: float) -> None:
    """One agent's sandboxed command: how long it ran, by agent, how it ended and its exit code."""
    attrs = {"agent": _agent(), "status": status, "exit_code": "none" if exit_code is None else str(exit_code)}
    _meter().create_histogram_float("forgeflow_command_seconds", "Agents' sandboxed commands", "s").record(
        seconds, attrs
    )


def record_model_call(role: str, response: ModelResponse, seconds: float) -> None:
    attrs = {"agent": role, "model": response.model}
    meter = _meter()
    meter.create_histogram_float("forgeflow_model_latency", "Model call latency", "s").record(seconds, attrs)
    tokens = meter.create_counter("forgeflow_tokens", "Tokens by agent, model and kind", "tokens")
    u = response.usage
    for kind, count in (
        ("input", u.input_tokens),
        ("output", u.output_tokens),
        ("cache_read", u.cache_read_input_tokens),
        ("cache_write", u.cache_creation_input_tokens),
    ):
        if count:
            tokens.add(count, {**attrs, "kind": kind})
    meter.create_histogram_float("forgeflow_cost_usd", "Cost of model calls (sum = total USD)", "USD").record(
        response.cost_usd, attrs
    )
    _log.info(
        "model turn",
        agent=role,
        model=response.model,
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cache_read_input_tokens=u.cache_read_input_tokens,
        cost_usd=round(response.cost_usd, 6),
        stop_reason=response.stop_reason,
        latency_ms=round(seconds * 1000, 1),
    )


@asynccontextmanager
async def model_span(role: str, spec: ModelSpec) -> AsyncIterator[Span]:
    """The span of one model call; fill it with `finish_model_span` once the answer is in."""
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": GEN_AI_SYSTEM.get(spec.provider, spec.provider),
        "gen_ai.provider.name": GEN_AI_SYSTEM.get(spec.provider, spec.provider),  # the newer name of the same
        "gen_ai.request.model": spec.model,
        "forgeflow.agent": role,
    }
    with _tracer.start_as_current_span(f"chat {spec.model}", kind=SpanKind.CLIENT, attributes=attributes) as span:
        yield span


def finish_model_span(span: Span, response: ModelResponse) -> None:
    u = response.usage
    span.set_attributes(
        {
            "gen_ai.response.model": response.model,
            "gen_ai.usage.input_tokens": u.input_tokens,
            "gen_ai.usage.output_tokens": u.output_tokens,
            "gen_ai.usage.cache_read.input_tokens": u.cache_read_input_tokens,
            "gen_ai.usage.cache_creation.input_tokens": u.cache_creation_input_tokens,
            "gen_ai.response.finish_reasons": [response.stop_reason or "unknown"],
            "forgeflow.cost_usd": response.cost_usd,
        }
    )


@dataclass
class Outcome:
    """What an instrumented operation says about how it went (set inside the block)."""

    ok: bool = True
    attributes: dict[str, Any] = field(default_factory=dict)


@asynccontextmanager
async def operation(kind: str, name: str, attributes: Mapping[str, Any] | None = None) -> AsyncIterator[Outcome]:
    """A tool call, sandbox run or code-host call: span `<kind> <name>`, latency metric, log line."""
    outcome = Outcome()
    agent = _agent()
    started = time.monotonic()
    span_attrs = {f"forgeflow.{kind}.name": name, "forgeflow.agent": agent, **(attributes or {})}
    with _tracer.start_as_current_span(f"{kind} {name}", attributes=span_attrs) as span:
        try:
            yield outcome
        except BaseException:
            outcome.ok = False
            raise
        finally:
            seconds = time.monotonic() - started
            result = "ok" if outcome.ok else "error"
            span.set_attributes({f"forgeflow.{kind}.outcome": result, **outcome.attributes})
            if not outcome.ok:
                span.set_status(Status(StatusCode.ERROR))
            _meter().create_histogram_float(f"forgeflow_{kind}_latency", f"{kind} latency", "s").record(
                seconds, {kind: name, "agent": agent, "outcome": result}
            )
            _log.info(f"{kind} call", **{kind: name}, outcome=result, latency_ms=round(seconds * 1000, 1))
