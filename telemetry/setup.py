"""Turn traces and metrics on from configuration; both are off unless configured.

Traces: set the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`); spans go out over
OTLP/HTTP, and the one tracing interceptor on the client (workers inherit it) links workflow,
child workflows, activities and the spans our activities open into one trace per run, whoever
started it (`telemetry.run_trace`). Metrics: the worker runtime exports the SDK's own metrics and
ours, either on a Prometheus endpoint (`FORGEFLOW_METRICS_PROMETHEUS`, host:port) or over OTLP
(`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`).

Spans leave redacted, as log lines do: attribute values, event attributes (an exception's message
and stack trace), link attributes, names and status descriptions pass through `policy.redact` in the
exporter, so no span processor or instrumentation can add a secret after the check.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link, Status
from opentelemetry.util.types import AnyValue, Attributes
from temporalio.client import Interceptor
from temporalio.runtime import OpenTelemetryConfig, PrometheusConfig, Runtime, TelemetryConfig

from config.settings import Settings
from policy.redact import redact, secret_values
from telemetry.run_trace import RunTraceInterceptor

TRACE_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def tracing_configured(env: Mapping[str, str]) -> bool:
    return any(env.get(v) for v in TRACE_VARS) and env.get("OTEL_TRACES_EXPORTER", "otlp") != "none"


def install_tracer_provider(service: str) -> None:
    """The global tracer provider, exporting over OTLP/HTTP as the OTEL_* variables say."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = RedactingSpanExporter(OTLPSpanExporter(), secret_values(dict(os.environ)))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


class RedactingSpanExporter(SpanExporter):
    """Hands `inner` redacted copies of the spans: known secret values and credential shapes taken
    out of every string a span carries (the resource, which we set, is left as it is)."""

    def __init__(self, inner: SpanExporter, secrets: Iterable[str]) -> None:
        self._inner = inner
        self._secrets = tuple(secrets)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([self._redacted(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def _redacted(self, span: ReadableSpan) -> ReadableSpan:
        status = span.status
        if status.description:
            status = Status(status.status_code, redact(status.description, self._secrets))
        return ReadableSpan(
            name=redact(span.name, self._secrets),
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=self._attributes(span.attributes),
            events=[
                Event(redact(e.name, self._secrets), self._attributes(e.attributes), e.timestamp) for e in span.events
            ],
            links=[Link(link.context, self._attributes(link.attributes)) for link in span.links],
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def _attributes(self, attributes: Attributes) -> dict[str, AnyValue]:
        return {key: self._value(value) for key, value in (attributes or {}).items()}

    def _value(self, value: AnyValue) -> AnyValue:
        if isinstance(value, str):
            return redact(value, self._secrets)
        if isinstance(value, Mapping):
            return {key: self._value(v) for key, v in value.items()}
        if isinstance(value, Sequence) and not isinstance(value, bytes):
            return tuple(self._value(v) for v in value)
        return value


def tracing_interceptors() -> list[Interceptor]:
    """Register once, on the client. A run started without a trace context (temporal workflow start,
    the Web UI, a schedule) gets a root span of its own, so it is one trace as well."""
    return [RunTraceInterceptor()]


def client_interceptors(service: str, env: Mapping[str, str] | None = None) -> list[Interceptor]:
    if not tracing_configured(os.environ if env is None else env):
        return []
    install_tracer_provider(service)
    return tracing_interceptors()


def metrics_runtime(settings: Settings, env: Mapping[str, str] | None = None) -> Runtime | None:
    """A runtime that exports metrics, or None for the SDK's default (no export)."""
    env = os.environ if env is None else env
    if settings.metrics_prometheus:
        metrics: PrometheusConfig | OpenTelemetryConfig = PrometheusConfig(bind_address=settings.metrics_prometheus)
    elif endpoint := env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"):
        http = env.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf").startswith("http")
        metrics = OpenTelemetryConfig(url=endpoint, http=http)
    else:
        return None
    return Runtime(telemetry=TelemetryConfig(metrics=metrics))
