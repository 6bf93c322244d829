"""One trace per run, whoever starts it: the run's own root, derived from its ids (pure), exported
once with exactly those ids, and a whole run on the time-skipping server with and without a trace
context coming in."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client, Interceptor, OutboundInterceptor, StartWorkflowInput, WorkflowHandle
from temporalio.converter import PayloadConverter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from telemetry.run_trace import RootSpan, RunTraceInterceptor, export_root_span, root_span_ids
from telemetry.setup import RedactingSpanExporter, tracing_interceptors
from tests.telemetry.test_observability import _tree_is_connected
from tests.telemetry.traced_workflows import Leaf, Parent, touch

RUN_ID = "0195e6a4-6c5b-7b3e-9a51-3f1a2b4c5d6e"


def test_root_ids_are_pinned() -> None:
    """A durable contract: a worker deriving other ids would split an in-flight run in two traces."""
    assert root_span_ids("my-run", RUN_ID) == (0x863B2CA276C7897FAE5BB40894BBF88A, 0x5DA580675A69790C)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("my-run", RUN_ID), ("my-run", "0195e6a4-6c5b-7b3e-9a51-3f1a2b4c5d6f")),  # the same id, started again
        (("my-run", RUN_ID), ("my-run2", RUN_ID)),
        (("a.b", "c"), ("a", "b.c")),  # no two (id, run id) pairs run together into one string
        (("", ""), ("", " ")),
    ],
)
def test_root_ids_differ_between_runs(a: tuple[str, str], b: tuple[str, str]) -> None:
    (trace_a, span_a), (trace_b, span_b) = root_span_ids(*a), root_span_ids(*b)
    assert trace_a != trace_b and span_a != span_b
    assert all(i > 0 for i in (trace_a, span_a, trace_b, span_b))
    assert trace_a < 2**128 and span_a < 2**64


def test_the_root_leaves_with_exactly_its_ids_and_redacted() -> None:
    exported = InMemorySpanExporter()
    provider = TracerProvider()  # not the global one: this test owns its pipeline
    provider.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(exported, ["planted-0123456789"])))
    trace_id, span_id = root_span_ids("my-run", RUN_ID)
    attributes = {"temporalWorkflowID": "my-run", "temporalRunID": RUN_ID, "note": "planted-0123456789"}
    export_root_span(RootSpan("WorkflowStarted:X", trace_id, span_id, attributes, 1_000, 2_000), provider)
    with provider.get_tracer("t").start_as_current_span("after"):
        pass  # the provider's own spans keep their random ids
    provider.shutdown()
    root, after = exported.get_finished_spans()
    assert (root.context.trace_id, root.context.span_id, root.parent) == (trace_id, span_id, None)
    assert (root.name, root.start_time, root.end_time) == ("WorkflowStarted:X", 1_000, 2_000)
    assert (root.attributes or {})["note"] == "[redacted]" and root.context.trace_flags.sampled
    assert after.context.trace_id != trace_id and after.context.span_id != span_id


def _worker(client: Client, queue: str) -> Worker:
    """A worker that keeps no workflow in its cache: every workflow task replays the history from
    the start, as a fresh worker does after a crash."""
    return Worker(
        client,
        task_queue=queue,
        workflows=[Parent, Leaf],
        activities=[touch],
        interceptors=[RunTraceInterceptor()],  # what tracing_interceptors() gives a client's workers
        max_cached_workflows=0,
    )


async def test_a_run_started_without_a_trace_is_one_trace_through_replays(
    time_skipping_env: WorkflowEnvironment, spans: InMemorySpanExporter
) -> None:
    """Started, signalled and awaited through a client with no tracing, as `temporal workflow start`
    does it. Replaying the finished history afterwards exports nothing."""
    client = time_skipping_env.client
    queue = f"run-trace-{uuid.uuid4().hex[:6]}"
    async with _worker(client, queue):
        handle: WorkflowHandle[Parent, str] = await client.start_workflow(
            Parent.run, id=f"untraced-{uuid.uuid4().hex[:6]}", task_queue=queue
        )
        await handle.signal(Parent.proceed)
        assert await handle.result() == "leaf"
    everything = list(spans.get_finished_spans())
    root = _tree_is_connected(everything)  # one trace, one root, every parent in it
    run_id = (await handle.describe()).run_id
    assert root.name == "WorkflowStarted:Parent"
    assert (root.context.trace_id, root.context.span_id) == root_span_ids(handle.id, run_id)
    assert root.attributes == {"temporalWorkflowID": handle.id, "temporalRunID": run_id}
    names = Counter(s.name for s in everything)
    assert names == {
        "WorkflowStarted:Parent": 1,
        "RunWorkflow:Parent": 1,
        "StartActivity:touch": 2,
        "RunActivity:touch": 2,
        "HandleSignal:proceed": 1,
        "StartChildWorkflow:Leaf": 1,
        "RunWorkflow:Leaf": 1,
        "CompleteWorkflow:Leaf": 1,
        "CompleteWorkflow:Parent": 1,
    }
    on_root = {s.name for s in everything if s.parent and s.parent.span_id == root.context.span_id}
    assert on_root == {
        "RunWorkflow:Parent",
        "StartActivity:touch",
        "HandleSignal:proceed",  # a signal sent without a header, as `temporal workflow signal` sends it
        "StartChildWorkflow:Leaf",
        "CompleteWorkflow:Parent",
    }

    replayer = Replayer(workflows=[Parent, Leaf], interceptors=[RunTraceInterceptor()])
    await replayer.replay_workflow(await handle.fetch_history())
    assert len(spans.get_finished_spans()) == len(everything)


async def test_a_run_started_with_a_trace_keeps_the_clients(
    time_skipping_env: WorkflowEnvironment, spans: InMemorySpanExporter
) -> None:
    """The client's StartWorkflow span is the root, as the SDK makes it; no root of the run's own."""
    target = time_skipping_env.client.service_client.config.target_host
    traced = await Client.connect(target, interceptors=tracing_interceptors())
    queue = f"run-trace-{uuid.uuid4().hex[:6]}"
    async with _worker(time_skipping_env.client, queue):
        assert await traced.execute_workflow(Leaf.run, id=f"traced-{uuid.uuid4().hex[:6]}", task_queue=queue) == "leaf"
    everything = list(spans.get_finished_spans())
    root = _tree_is_connected(everything)
    assert root.name == "StartWorkflow:Leaf"
    (run,) = [s for s in everything if s.name == "RunWorkflow:Leaf"]
    assert run.parent is not None and run.parent.span_id == root.context.span_id
    assert not [s for s in everything if s.name.startswith("WorkflowStarted:")]


class _ForeignHeader(Interceptor):
    """A starter that sends a `_tracer-data` header our propagator cannot read (another SDK's format)."""

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        class Outbound(OutboundInterceptor):
            async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[object, object]:
                carrier = {"uber-trace-id": "5b8aa5a2d2c872e8:5b8aa5a2d2c872e8:0:1"}
                input.headers = {**input.headers, "_tracer-data": PayloadConverter.default.to_payloads([carrier])[0]}
                return await super().start_workflow(input)

        return Outbound(next)


async def test_a_header_with_no_span_we_can_read_counts_as_none(
    time_skipping_env: WorkflowEnvironment, spans: InMemorySpanExporter
) -> None:
    target = time_skipping_env.client.service_client.config.target_host
    foreign = await Client.connect(target, interceptors=[_ForeignHeader()])
    queue = f"run-trace-{uuid.uuid4().hex[:6]}"
    async with _worker(time_skipping_env.client, queue):
        assert await foreign.execute_workflow(Leaf.run, id=f"foreign-{uuid.uuid4().hex[:6]}", task_queue=queue)
    root = _tree_is_connected(list(spans.get_finished_spans()))
    assert root.name == "WorkflowStarted:Leaf"
