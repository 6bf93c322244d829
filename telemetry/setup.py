"""Turn traces and metrics on from configuration; both are off unless configured.

Traces: set the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`); spans go out over
OTLP/HTTP, and the one `TracingInterceptor` on the client (workers inherit it) links workflow,
child workflows, activities and the spans our activities open. Metrics: the worker runtime exports
the SDK's own metrics and ours, either on a Prometheus endpoint (`FORGEFLOW_METRICS_PROMETHEUS`,
host:port) or over OTLP (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry import trace
from temporalio.client import Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import OpenTelemetryConfig, PrometheusConfig, Runtime, TelemetryConfig

from config.settings import Settings

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
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def tracing_interceptors() -> list[Interceptor]:
    """Register once, on the client: workflows started without a trace (temporal workflow start)
    still get one."""
    return [TracingInterceptor(always_create_workflow_spans=True)]


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
