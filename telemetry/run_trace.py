"""One trace per run, whoever starts it.

A run started by a traced client (our CLI, the Python client in the tests) carries the client's
trace context in its `_tracer-data` header, and the SDK's `TracingInterceptor` puts everything the
workflow does under it. A run started by `temporal workflow start`, the Web UI, a schedule or a
webhook without our interceptor carries none, and the SDK then makes RunWorkflow and every
StartActivity / StartChildWorkflow span the root of a trace of its own (issue 19: 59 spans in 11
traces).

Here such a run gets a root span of its own. Its trace id and span id are hashed from the workflow
id and run id, so every replay and every worker (a second one after a crash, too) computes the same
ids: no randomness, no side effect, no new command in history. The workflow side only derives the
ids and parents its spans on them; the root span itself is exported worker-side through an extern
function, the way the SDK exports its own workflow spans, once, when the run first executes (never
on replay). It leaves through the same tracer provider, so through `RedactingSpanExporter`.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import CarrierValT
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from temporalio import workflow
from temporalio.contrib.opentelemetry import TracingInterceptor, TracingWorkflowInboundInterceptor
from temporalio.worker import WorkflowInterceptorClassInput

Carrier = dict[str, CarrierValT]
EXPORT_ROOT = "forgeflow_export_run_root"


def root_span_ids(workflow_id: str, run_id: str) -> tuple[int, int]:
    """The (trace id, span id) of the root span of a run started without a trace context.

    A durable contract, like a workflow name: a worker that derived other ids would put the rest of
    an in-flight run in a second trace. Neither id is ever 0 (the invalid id)."""
    digest = hashlib.sha256(json.dumps(["forgeflow run root", workflow_id, run_id]).encode()).digest()
    return int.from_bytes(digest[:16], "big") or 1, int.from_bytes(digest[16:24], "big") or 1


@dataclass(frozen=True)
class RootSpan:
    """What the workflow side hands the worker to export: the root span, ids fixed in advance."""

    name: str
    trace_id: int
    span_id: int
    attributes: dict[str, str]
    start_ns: int
    end_ns: int


class _FixedIds(IdGenerator):
    """Hands out the ids the one span started with it must have."""

    def __init__(self, trace_id: int, span_id: int) -> None:
        self._trace_id, self._span_id = trace_id, span_id

    def generate_trace_id(self) -> int:
        return self._trace_id

    def generate_span_id(self) -> int:
        return self._span_id


def export_root_span(root: RootSpan, provider: trace.TracerProvider | None = None) -> None:
    """Export `root` with exactly its ids through `provider` (default: the global one), so the
    configured sampler, processors and exporter see it like any other span."""
    tracer = (provider or trace.get_tracer_provider()).get_tracer(__name__)
    if not isinstance(tracer, SdkTracer):
        return  # no SDK provider: tracing is off, and nothing would be exported anyway
    # A copy of the provider's tracer (same sampler, resource, processors) whose id generator yields
    # the root's ids; the provider's own tracers and their random ids are left as they are.
    fixed = copy.copy(tracer)
    fixed.id_generator = _FixedIds(root.trace_id, root.span_id)
    span = fixed.start_span(
        root.name, context=Context(), kind=SpanKind.INTERNAL, attributes=root.attributes, start_time=root.start_ns
    )
    span.end(end_time=root.end_ns)


class RunTraceInterceptor(TracingInterceptor):
    """The SDK's `TracingInterceptor`, giving a run started without a trace context a root span of
    its own. A run started with one (the client's) is traced exactly as the SDK traces it."""

    def __init__(self) -> None:
        # Still on for what has no context of its own even here: a query sent without a header.
        super().__init__(always_create_workflow_spans=True)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[TracingWorkflowInboundInterceptor]:
        super().workflow_interceptor_class(input)  # registers the SDK's own extern function
        input.unsafe_extern_functions[EXPORT_ROOT] = export_root_span
        return _RunTraceWorkflowInterceptor


class _RunTraceWorkflowInterceptor(TracingWorkflowInboundInterceptor):
    """Runs in the workflow sandbox: deterministic, and exports only through the extern function."""

    def _load_workflow_context_carrier(self) -> Carrier | None:
        # The SDK reads the run's context from here for the run, its signals and its updates, and
        # parents on it every span it opens for them (activities, children, completion).
        if self._workflow_context_carrier:
            return self._workflow_context_carrier
        incoming = super()._load_workflow_context_carrier()
        if incoming and self._has_span(incoming):
            return incoming
        self._workflow_context_carrier = self._own_root(incoming or {})
        return self._workflow_context_carrier

    def _own_root(self, incoming: Carrier) -> Carrier:
        """The carrier of the run's own root (keeping whatever else came in, such as baggage)."""
        info = workflow.info()
        trace_id, span_id = root_span_ids(info.workflow_id, info.run_id)
        # Sampled, as a root the default sampler (parent-based, always on) starts would be.
        root = NonRecordingSpan(
            SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
        )
        carrier = dict(incoming)
        self.text_map_propagator.inject(carrier, trace.set_span_in_context(root))
        if not workflow.unsafe.is_replaying():  # replay and other workers derive it, never export it again
            start_ns = _ns(info.workflow_start_time)
            workflow.extern_functions()[EXPORT_ROOT](
                RootSpan(
                    name=f"WorkflowStarted:{info.workflow_type}",
                    trace_id=trace_id,
                    span_id=span_id,
                    attributes={"temporalWorkflowID": info.workflow_id, "temporalRunID": info.run_id},
                    start_ns=start_ns,
                    end_ns=max(start_ns, workflow.time_ns()),
                )
            )
        return carrier

    def _has_span(self, carrier: Carrier) -> bool:
        """Whether a header carries a span to parent on (not only, say, baggage)."""
        context = self.text_map_propagator.extract(carrier)
        return trace.get_current_span(context).get_span_context().is_valid


def _ns(moment: datetime) -> int:
    """Nanoseconds since the epoch, exactly (a float timestamp would round them)."""
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000
