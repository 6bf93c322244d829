"""Crash-test helpers: catch a run at a chosen moment, and read from its history how it recovered.

A moment is caught deterministically, never by timing alone: a GitHub reply held by the loopback
(`Hold`), a scripted model turn slowed down and seen in the ledger, a sandbox run seen running a
marked test process. What the history records of each recovery: for an activity, the lost
attempt's failure (heartbeat or start-to-close timeout) and when the next attempt started; for a
local activity (a workspace tool, a quick code-host call), the workflow task that ran it timing
out, and when the next workflow task started (it runs the call again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType, PendingActivityState, TimeoutType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.client import Client, WorkflowHistory
from temporalio.service import RPCError

REPO_PATH = "/repos/acme/calc"
LOCAL_ACTIVITY_MARKER = "core_local_activity"  # the SDK's marker for a local activity's result
CGROUP_ROOT = Path("/sys/fs/cgroup")


class Hold:
    """Holds the loopback GitHub's reply to the first request matching `method` and `path` (a regular
    expression after /repos/acme/calc) until released: the request was served, its client never hears."""

    def __init__(self, method: str, path: str) -> None:
        self.method, self.path = method, re.compile(REPO_PATH + path)
        self.reached, self.release = threading.Event(), threading.Event()
        self._lock = threading.Lock()

    def __call__(self, method: str, path: str) -> None:
        with self._lock:
            if self.reached.is_set() or method != self.method or not self.path.fullmatch(path.partition("?")[0]):
                return
            self.reached.set()
        self.release.wait(timeout=120)


@dataclass
class Moment:
    """A moment to kill the worker at, and the activity the kill must interrupt."""

    what: str
    activity: str
    hold: tuple[str, str] | None = None  # (method, path) of a GitHub reply to hold
    model_turn: tuple[str, int] | None = None  # (role, turn) of the scripted model, slowed down
    attempt: int = 1  # of the activity (the moment for the sandbox is: this attempt started)
    cold_cache: bool = False  # the workers' commit cache is gone (as on a new host)
    local: bool = False  # a local activity: it runs inside its workflow's task, on that task's worker


LOST_WITH_WORKFLOW_TASK = "WORKFLOW_TASK"  # Recovery.lost_by of a local activity


@dataclass
class Recovery:
    activity: str
    # The TimeoutType name of the lost attempt's failure ("error" for any other failure), or
    # LOST_WITH_WORKFLOW_TASK: a local activity's workflow task timed out while it ran.
    lost_by: str
    next_started: datetime
    rescheduled: bool  # the call's attempts were spent: the workflow scheduled it again


def ledger_has(ledger: Path, run_id: str, role: str, turn: int) -> bool:
    """The scripted model was asked for this turn (it writes the line before it answers)."""
    if not ledger.exists():
        return False
    lines = [json.loads(line) for line in ledger.read_text().splitlines() if line]
    return any(r["run_id"] == run_id and r["role"] == role and r["turn"] == turn for r in lines)


async def running_on(client: Client, workflow_id: str, activity: str, attempt: int, within: float) -> int:
    """The pid of the worker process running `activity` (started, in `attempt`) for `workflow_id`,
    once it runs: what the server records as the attempt's worker identity, `pid@host`."""
    _, pid = await running_attempt(client, workflow_id, activity, within, attempt=attempt)
    return pid


async def running_attempt(
    client: Client, workflow_id: str, activity: str, within: float, attempt: int | None = None
) -> tuple[int, int]:
    """(attempt, pid of its worker process) of `activity` once it runs for `workflow_id` (in
    `attempt`, or any)."""
    handle = client.get_workflow_handle(workflow_id)
    started = PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
    seen: object = "nothing yet"  # what the last look found, for the failure message
    for _ in range(int(within / 0.1)):
        try:
            pending: Sequence[PendingActivityInfo] = (await handle.describe()).raw_description.pending_activities
        except RPCError as err:  # not started yet
            pending, seen = [], f"RPCError {err.status}: {err.message}"
        for p in pending:
            if p.activity_type.name == activity and p.state == started and attempt in (None, p.attempt):
                return p.attempt, int(p.last_worker_identity.partition("@")[0])
        if pending:
            seen = [(p.activity_type.name, p.state, p.attempt, p.last_failure.message[:200]) for p in pending]
        await asyncio.sleep(0.1)
    which = f"attempt {attempt}" if attempt is not None else "any attempt"
    raise AssertionError(f"{activity} ({which}) never started in {workflow_id}; last seen: {seen}")


async def running_task_on(client: Client, workflow_id: str, within: float) -> int:
    """The pid of the worker process running `workflow_id`'s workflow task now (and so any local
    activity the task is waiting for): the identity of its last WorkflowTaskStarted, `pid@host`,
    once no WorkflowTaskCompleted follows it."""
    handle = client.get_workflow_handle(workflow_id)
    for _ in range(int(within / 0.1)):
        with contextlib.suppress(RPCError):  # not started yet
            events = list((await handle.fetch_history()).events)
            if events and events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                return int(events[-1].workflow_task_started_event_attributes.identity.partition("@")[0])
        await asyncio.sleep(0.1)
    raise AssertionError(f"no workflow task of {workflow_id} was running within {within} s")


def marked_process(marker: str) -> tuple[int, list[Path]] | None:
    """A running process whose command line holds `marker` (a test in the sandbox is running), with
    the per-run cgroups that hold it (`forgeflow-*`, one per hierarchy; none without cgroups)."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if marker.encode() not in (proc / "cmdline").read_bytes():
                continue
            lines = (proc / "cgroup").read_text().splitlines()
        except OSError:  # it ended meanwhile
            continue
        return int(proc.name), [_cgroup_dir(line) for line in lines if "/forgeflow-" in line]
    return None


def _cgroup_dir(line: str) -> Path:
    """A /proc/<pid>/cgroup line (`4:memory:/a/forgeflow-x`, or `0::/a/forgeflow-x` on v2) as a directory."""
    _, names, path = line.split(":", 2)
    return CGROUP_ROOT / names / path.lstrip("/") if names else CGROUP_ROOT / path.lstrip("/")


def remove_cgroups(groups: list[Path], within: float = 30) -> None:
    """Remove the cgroups of sandboxed runs whose worker was killed -9 (it never removed them), once
    their processes are gone: a leftover group would look like a run still going to other tests."""
    deadline = time.monotonic() + within
    left = [group for group in dict.fromkeys(groups) if group.exists()]
    while left and time.monotonic() < deadline:
        for group in list(left):
            with contextlib.suppress(OSError):  # busy while the killed run's processes exit
                group.rmdir()
            if not group.exists():
                left.remove(group)
        time.sleep(0.2)
    assert not left, f"cgroups of killed runs still busy: {left}"


async def histories(client: Client, workflow_id: str) -> list[WorkflowHistory]:
    """The run's history and each of its agents' (children are named `<id>.<role>-<n>`)."""
    found = [wf.id async for wf in client.list_workflows(f'WorkflowId STARTS_WITH "{workflow_id}"')]
    return [await client.get_workflow_handle(wf_id).fetch_history() for wf_id in found]


def recoveries(history: WorkflowHistory) -> list[Recovery]:
    """Every attempt that followed a lost or failed one: a retry within the call (its started event
    says which attempt, and why the one before failed), or the call scheduled again after it timed out."""
    names: dict[int, str] = {}  # scheduled event id → activity type
    timed_out: dict[str, str] = {}  # activity type → how its last call was lost, until scheduled again
    found: list[Recovery] = []
    events = list(history.events)
    for i, event in enumerate(events):
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            found.extend(_local_recovery(event, events[i + 1 :]))
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            names[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
            attrs = event.activity_task_timed_out_event_attributes
            timed_out[names[attrs.scheduled_event_id]] = _timeout_name(attrs.failure.timeout_failure_info.timeout_type)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            found.extend(_started(event, names, timed_out))
    return found


def _started(event: HistoryEvent, names: dict[int, str], timed_out: dict[str, str]) -> list[Recovery]:
    attrs = event.activity_task_started_event_attributes
    name, at = names[attrs.scheduled_event_id], event.event_time.ToDatetime(tzinfo=UTC)
    found = []
    if name in timed_out and attrs.attempt == 1:
        found.append(Recovery(name, timed_out.pop(name), at, rescheduled=True))
    if attrs.attempt > 1:
        failure = attrs.last_failure
        lost_by = (
            _timeout_name(failure.timeout_failure_info.timeout_type)
            if failure.HasField("timeout_failure_info")
            else "error"
        )
        found.append(Recovery(name, lost_by, at, rescheduled=False))
    return found


def _local_recovery(timed_out: HistoryEvent, after: list[HistoryEvent]) -> list[Recovery]:
    """A started workflow task that timed out (its worker died) while it ran a local activity: the
    call ran again in a later task, which recorded it (the next local activity marker). A task that
    was never picked up (a dead worker's sticky queue, SCHEDULE_TO_START) lost nothing that ran."""
    kind = timed_out.workflow_task_timed_out_event_attributes.timeout_type
    if kind != TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE:
        return []
    started = next(e for e in after if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED)
    markers = (e.marker_recorded_event_attributes for e in after if e.HasField("marker_recorded_event_attributes"))
    marker = next((m for m in markers if m.marker_name == LOCAL_ACTIVITY_MARKER), None)
    if marker is None:
        return []
    data = json.loads(marker.details["data"].payloads[0].data)
    return [Recovery(data["activity_type"], LOST_WITH_WORKFLOW_TASK, started.event_time.ToDatetime(tzinfo=UTC), False)]


def _timeout_name(value: Any) -> str:
    return TimeoutType.Name(value).removeprefix("TIMEOUT_TYPE_")


def scheduled_heartbeats(history: WorkflowHistory) -> dict[str, tuple[float, float]]:
    """activity type → (heartbeat timeout, start-to-close timeout) in seconds, as the workflow scheduled it."""
    found = {}
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            found[attrs.activity_type.name] = (
                attrs.heartbeat_timeout.ToTimedelta().total_seconds(),
                attrs.start_to_close_timeout.ToTimedelta().total_seconds(),
            )
    return found
