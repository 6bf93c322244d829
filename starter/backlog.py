"""The autoscaling signal: each served task queue's approximate backlog, read from the server and
exported as gauges beside the SDK's own worker metrics.

Every `FORGEFLOW_BACKLOG_POLL_SECONDS` the worker asks the server to describe each of its queues with
`report_stats` (the current, default API mode: one task type per request) and sets, per queue and
task type (workflow, activity):

- `forgeflow_task_queue_backlog_count`: tasks waiting (`approximate_backlog_count`);
- `forgeflow_task_queue_backlog_age_seconds`: age of the oldest waiting task;
- `forgeflow_task_queue_add_rate` and `forgeflow_task_queue_dispatch_rate`: tasks per second over
  the server's last 30 s; their difference is the rate the backlog grows.

The server computes these approximately and caches them for a few seconds; they leave through the
runtime's Prometheus endpoint or OTLP exporter, so a worker without a metrics exporter polls nothing.
A failed describe is logged once per kind of failure (again after a success) and retried next
period; a gauge keeps its last value meanwhile. Nothing here can stop the worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import structlog
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, DescribeTaskQueueResponse
from temporalio.client import Client
from temporalio.common import MetricMeter
from temporalio.runtime import Runtime
from temporalio.service import RPCError

from config.settings import Settings

log = structlog.get_logger("forgeflow.backlog")

TASK_TYPES: dict[str, TaskQueueType.ValueType] = {
    "workflow": TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    "activity": TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
}
# A describe that takes longer than this is a failure of its own kind, not a stalled poller.
DESCRIBE_TIMEOUT = timedelta(seconds=10)


@dataclass(frozen=True)
class Target:
    """One (task queue, task type) pair whose backlog is read."""

    task_queue: str
    task_type: str  # a key of TASK_TYPES


@dataclass(frozen=True)
class BacklogReading:
    """What one describe says about one target's backlog; every value is non-negative."""

    target: Target
    count: int
    age_seconds: float
    add_rate: float
    dispatch_rate: float


def backlog_targets(settings: Settings, served: Sequence[str]) -> list[Target]:
    """What a process serving `served` reports: the workflow queue's workflow and activity tasks, the
    sandbox queue's activity tasks (no workflow runs there), either kind for any other queue. A
    process that runs the sandbox queue in a child reports it too: the child exports no metrics."""
    kinds = {settings.task_queue: ("workflow", "activity"), settings.sandbox_task_queue: ("activity",)}
    return [Target(q, kind) for q in served for kind in kinds.get(q, ("workflow", "activity"))]


def describe_request(namespace: str, target: Target) -> DescribeTaskQueueRequest:
    return DescribeTaskQueueRequest(
        namespace=namespace,
        task_queue=TaskQueue(name=target.task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
        task_queue_type=TASK_TYPES[target.task_type],
        report_stats=True,
    )


def backlog_reading(target: Target, response: DescribeTaskQueueResponse) -> BacklogReading | None:
    """The backlog in `response`, or None when it carries no stats (a server too old to report them).

    Negative values (the count is approximate) read as 0: a gauge takes none, and none is meant."""
    if not response.HasField("stats"):
        return None
    stats = response.stats
    return BacklogReading(
        target=target,
        count=max(0, stats.approximate_backlog_count),
        age_seconds=max(0.0, stats.approximate_backlog_age.ToTimedelta().total_seconds()),
        add_rate=max(0.0, stats.tasks_add_rate),
        dispatch_rate=max(0.0, stats.tasks_dispatch_rate),
    )


def failure_kind(err: BaseException) -> str:
    """What makes two failures the same for logging: the RPC status (UNAVAILABLE, NOT_FOUND, ...), or
    the exception's type."""
    if isinstance(err, RPCError):
        return f"rpc:{err.status.name}"
    return type(err).__name__


class FailureLog:
    """Logs a failure the first time its kind is seen, and the recovery once a whole poll succeeds."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def failed(self, target: Target, err: BaseException) -> None:
        kind = failure_kind(err)
        if kind not in self._seen:
            self._seen.add(kind)
            log.warning(
                "cannot read task queue backlog; retrying every period, logging this kind once",
                task_queue=target.task_queue,
                task_type=target.task_type,
                kind=kind,
                error=str(err),
            )

    def succeeded(self) -> None:
        if self._seen:
            log.info("task queue backlog readable again", after=sorted(self._seen))
            self._seen.clear()


class BacklogGauges:
    """The gauges, created once on the runtime's meter."""

    def __init__(self, meter: MetricMeter) -> None:
        self._count = meter.create_gauge(
            "forgeflow_task_queue_backlog_count", "Tasks waiting in the task queue (approximate)", "tasks"
        )
        self._age = meter.create_gauge_float(
            "forgeflow_task_queue_backlog_age_seconds", "Age of the oldest waiting task (approximate)", "s"
        )
        self._add = meter.create_gauge_float(
            "forgeflow_task_queue_add_rate", "Tasks added per second, last 30 s", "tasks/s"
        )
        self._dispatch = meter.create_gauge_float(
            "forgeflow_task_queue_dispatch_rate", "Tasks dispatched per second, last 30 s", "tasks/s"
        )

    def record(self, reading: BacklogReading) -> None:
        attributes: dict[str, str | int | float | bool] = {
            "task_queue": reading.target.task_queue,
            "task_type": reading.target.task_type,
        }
        self._count.set(reading.count, attributes)
        self._age.set(reading.age_seconds, attributes)
        self._add.set(reading.add_rate, attributes)
        self._dispatch.set(reading.dispatch_rate, attributes)


async def poll_once(
    client: Client, gauges: BacklogGauges, targets: Sequence[Target], failures: FailureLog
) -> list[BacklogReading]:
    """Describe every target once and set its gauges; what was read (failures are logged, not raised)."""
    readings = []
    for target in targets:
        try:
            response = await client.workflow_service.describe_task_queue(
                describe_request(client.namespace, target), timeout=DESCRIBE_TIMEOUT
            )
            reading = backlog_reading(target, response)
            if reading is None:
                raise RuntimeError("the server reports no task queue stats (a newer server does)")
            gauges.record(reading)
        except Exception as err:  # never let the signal stop the worker; CancelledError is not one
            failures.failed(target, err)
        else:
            readings.append(reading)
    if len(readings) == len(targets):
        failures.succeeded()
    return readings


async def poll_backlog(client: Client, meter: MetricMeter, targets: Sequence[Target], every: float) -> None:
    """Poll every `every` seconds until cancelled."""
    gauges, failures = BacklogGauges(meter), FailureLog()
    while True:
        await poll_once(client, gauges, targets, failures)
        await asyncio.sleep(every)


@asynccontextmanager
async def backlog_poller(
    client: Client, runtime: Runtime | None, settings: Settings, served: Sequence[str]
) -> AsyncIterator[None]:
    """Poll the backlog of the queues this process is responsible for while the block runs; nothing
    when the runtime exports no metrics (None) or the period is 0."""
    targets = backlog_targets(settings, served)
    if runtime is None or settings.backlog_poll_seconds == 0 or not targets:
        yield
        return
    task = asyncio.create_task(
        poll_backlog(client, runtime.metric_meter, targets, settings.backlog_poll_seconds), name="backlog-poller"
    )
    try:
        yield
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            # Our own cancellation of the poller; if this task is itself being cancelled, re-raise.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
