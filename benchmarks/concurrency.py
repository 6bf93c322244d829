"""What forgeflow costs at concurrency, against the floor: a bare model-turn loop on Temporal.

    python -m benchmarks.concurrency [--runs N] [--latency SECONDS] [--in-memory] [--rounds K]

One invocation starts the embedded default's dev server (the command line of starter/server.py:
SQLite file, transfer queue tuned; `--in-memory` drops the file) and a loopback Messages API
answering every call after a fixed latency (default 1 s). Then, for the floor (benchmarks/_floor.py),
the shaped floor and forgeflow (`python worker.py`, serving only its workflow queue), each worker a
process of its own on its own task queue: 1 run, then N runs started at once (default 100). A
forgeflow run is a plan-mode run on a local sample repository, Claude through the real `anthropic`
client; the planner's conversation is 4 model turns (list_files, read_file, search, submit), decided
from the request by the number of assistant messages in it. The floor makes the same 4 calls,
answering each tool call inline. The shaped floor is the floor's loop in the shape forgeflow had
until its agents ran inside their IssueWorkflow (issue 14): a step activity, the loop as a child
workflow, a step activity. It stays as a reference point.

How each column is measured:
- wall: from the first start request to the last result of the N runs (all checked: forgeflow
  `planned`, the floor 4 turns); ratio: to the floor's wall.
- worker CPU / run: the worker process's utime + stime + cutime + cstime (/proc/<pid>/stat: its
  threads, and its children once waited for, such as git) over the N runs, divided by N.
- server CPU / run: the same for the dev server process.
- events, KB / turn: every event of every run's history (forgeflow: the IssueWorkflow, its planner
  running inside it), counted and summed as serialized protobuf (ByteSize), divided by
  the model turns (the model-turn activities scheduled in those histories). A 4-turn run spreads its
  fixed part (two workflow starts and ends, the task's fetch, the plan) over 4 turns; the long run
  below also prints what each further turn adds.
- peak RSS: the worker process's VmHWM (/proc/<pid>/status) at the end, its whole life.
- per activity and workflow task, from the event times of the N runs' histories (the server's
  clock), p50 / p90 in milliseconds, over every completed activity (model turns and tools):
  dispatch = ActivityTaskStarted - ActivityTaskScheduled (the task's way to a worker; near 0 here,
  as the SDK asks for eager dispatch: the task rides back on the workflow task's completion);
  resume = the next WorkflowTaskStarted - ActivityTaskCompleted (the result's way back into the
  workflow: transfer queue, matching, a poller); round trip = dispatch + resume, the orchestration
  round trip the server adds to each activity. Besides: workflow task = WorkflowTaskCompleted -
  WorkflowTaskStarted (the worker's turn on the workflow, with the RPCs around it), and
  model call - latency = a model-turn activity's Completed - Started less the loopback's latency
  (the worker's overhead on a model call: delivery, the HTTP call, the result's way back).
- per run, p50 / p90: from its start (WorkflowExecutionStarted) to its first model call being
  scheduled, and from its last model answer (that activity's completion) to its end: where a burst
  of N runs waits besides the model (forgeflow fetches the task before its first call and posts the
  plan after its last).

With `--rounds K` (default 1) the three are measured K times in turn, each round against its own
floor: on a shared machine one invocation's walls move by about 15%, so the ratio to compare is the
median round's. The table is that round's; each round's ratios are printed below it.

Besides, over the N runs: this process's own CPU (the loopback's threads, the client) and every
other process's on the machine (/proc/stat busy time less the three), as the machine is shared.
Linux only (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle

from benchmarks._floor import READY, SHAPED_WORKFLOW, WORKFLOW, loop_id
from config.settings import Settings
from contracts.run import IssueInput, IssueResult, Outcome
from payloads.converter import data_converter
from starter.sample import SPEC, create_sample_repo
from starter.server import dev_server_args
from testkit.loopback.anthropic_api import AnthropicLoopback, Reply
from testkit.tools import git, installed_binary

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")
STARTUP_TIMEOUT = 60.0
# The planner's conversation, by the number of assistant messages in the request: 3 tools, then submit.
PLAN = {
    "summary": "Make slugify handle unicode",
    "tasks": [{"id": "t1", "title": "normalize unicode in slugify()", "files": ["textkit/__init__.py"]}],
    "risks": ["non-latin scripts"],
    "test_strategy": "extend tests/test_slugify.py",
}
TURNS: list[tuple[str, dict[str, Any]]] = [
    ("list_files", {}),
    ("read_file", {"path": "textkit/__init__.py"}),
    ("search", {"pattern": "def slugify"}),
    ("submit", PLAN),
]


# The long run: a spec carrying LONG_MARKER gets a conversation of LONG_TURNS reads of a 4 KB file
# each (a different one every turn, so no loop is suspected), then the plan.
LONG_MARKER = "forgeflow-benchmark-long-run"
LONG_TURNS = 25  # and the plan: within the planner's 30 turns
LONG_FILE_BYTES = 4096


def planner_reply(body: dict[str, Any]) -> Reply:
    """The reply to one request of the planner's (or the floor's) conversation."""
    turn = sum(1 for message in body.get("messages", []) if message.get("role") == "assistant")
    if LONG_MARKER in json.dumps(body.get("messages", [])[:1]):
        name, tool_input = ("read_file", {"path": f"big/f{turn:02d}.txt"}) if turn < LONG_TURNS else ("submit", PLAN)
    else:
        name, tool_input = TURNS[min(turn, len(TURNS) - 1)]
    use = {"type": "tool_use", "id": f"toolu_bench{turn:02d}", "name": name, "input": tool_input}
    return Reply(
        content=[{"type": "text", "text": f"step {turn + 1}"}, use], usage={"input_tokens": 2000, "output_tokens": 50}
    )


# --- processes -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of a process (all its threads, and its reaped children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS  # stat fields 14-17


def own_cpu_seconds() -> float:
    """This process's utime + stime: the loopback's threads and the client."""
    fields = Path("/proc/self/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine_busy_seconds() -> float:
    """CPU time every core spent on anything but idle and iowait since boot (/proc/stat)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]  # guest is in user
    return (sum(ticks) - ticks[3] - ticks[4]) / TICKS


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


@dataclass
class Process:
    """A child process in its own session, its output in `log`; `ready` appears there once it serves."""

    args: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.args, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def wait_for(self, ready: str) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while ready not in self.log.read_text(errors="replace"):
            assert self.proc is not None
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.args[:3]} did not start; see {self.log}:\n{self.log.read_text()[-2000:]}")
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


async def start_server(work: Path, in_memory: bool) -> tuple[Process, str]:
    """The embedded default's dev server, on free ports (`in_memory`: without its SQLite file); its
    process and address. A server that exits at once is started again on other ports: a port found
    free can be taken by another process before the server binds it (tests run side by side)."""
    for attempt in range(3):
        try:
            return await _start_server(work / f"server-{attempt}", in_memory)
        except _ServerExited:
            continue
    raise RuntimeError(f"the dev server did not start; see {work}/server-*/server.log")


class _ServerExited(RuntimeError):
    pass


async def _start_server(work: Path, in_memory: bool) -> tuple[Process, str]:
    address = f"127.0.0.1:{free_port()}"
    settings = Settings.model_validate(
        {"FORGEFLOW_DATA_DIR": str(work / "server"), "TEMPORAL_ADDRESS": address, "FORGEFLOW_UI_PORT": free_port()}
    )
    settings.data_dir.mkdir(parents=True)
    args = dev_server_args(settings, installed_binary("temporal"))
    if in_memory:
        at = args.index("--db-filename")
        del args[at : at + 2]
    server = Process(args, dict(os.environ), work / "server.log")
    server.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            await asyncio.wait_for(Client.connect(address), 2.0)
            return server, address
        except (TimeoutError, RuntimeError, OSError):
            assert server.proc is not None
            if server.proc.poll() is not None:
                raise _ServerExited(f"the dev server exited; see {server.log}") from None
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"the dev server did not start; see {server.log}") from None
            await asyncio.sleep(0.2)


def worker_env(address: str, queue: str, data_dir: Path, model_url: str) -> dict[str, str]:
    """This environment without any forgeflow, Temporal or provider setting, plus the benchmark's."""
    prefixes = ("FORGEFLOW_", "TEMPORAL_", "ANTHROPIC_", "PERPLEXITY_", "GITHUB_")
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return {
        **inherited,
        "TEMPORAL_ADDRESS": address,
        "FORGEFLOW_DATA_DIR": str(data_dir),
        "FORGEFLOW_TASK_QUEUE": queue,
        "ANTHROPIC_API_KEY": "sk-ant-loopback",
        "ANTHROPIC_BASE_URL": model_url,
    }


# --- runs and their histories ----------------------------------------------------------------------


@dataclass
class System:
    """One side of the comparison: how to start its worker and one run, and which histories a run has."""

    name: str
    worker_args: Callable[[str, str], list[str]]  # (address, queue) -> argv
    ready: str
    start_run: Callable[[Client, str, str], Awaitable[WorkflowHandle[Any, Any]]]  # (client, queue, id)
    check: Callable[[Any], None]
    histories: Callable[[str], list[str]]  # run id -> workflow ids
    model_activity: str
    start_long: Callable[[Client, str, str], Awaitable[WorkflowHandle[Any, Any]]] | None = None


@dataclass
class Measured:
    single_wall: float = 0.0
    wall: float = 0.0
    worker_cpu: float = 0.0
    server_cpu: float = 0.0
    bench_cpu: float = 0.0
    other_cpu: float = 0.0
    events: int = 0
    history_bytes: int = 0
    model_turns: int = 0
    peak_rss_mb: float = 0.0
    dispatch: list[float] = field(default_factory=list)
    resume: list[float] = field(default_factory=list)
    round_trip: list[float] = field(default_factory=list)
    workflow_task: list[float] = field(default_factory=list)
    model_call: list[float] = field(default_factory=list)
    to_first_model: list[float] = field(default_factory=list)  # per run: its start to its first model call
    after_last_model: list[float] = field(default_factory=list)  # per run: its last model answer to its end
    long: Measured | None = None  # the one long run, alone (history per turn with large tool results)


async def run_all(client: Client, system: System, queue: str, ids: list[str]) -> float:
    """Start every run at once and wait for all; the wall time from the first start to the last result."""
    started = time.perf_counter()
    handles = await asyncio.gather(*(system.start_run(client, queue, run_id) for run_id in ids))
    results = await asyncio.gather(*(handle.result() for handle in handles))
    wall = time.perf_counter() - started
    for result in results:
        system.check(result)
    return wall


def _seconds(event: HistoryEvent) -> float:
    return event.event_time.seconds + event.event_time.nanos / 1e9


def read_history(events: list[HistoryEvent], model_activity: str, latency: float, into: Measured) -> None:
    """Add one history's events, bytes, model turns and latencies (seconds) to `into`."""
    into.events += len(events)
    into.history_bytes += sum(event.ByteSize() for event in events)
    scheduled: dict[int, HistoryEvent] = {}
    started: dict[int, float] = {}
    wft_started = 0.0
    for i, event in enumerate(events):
        kind, at = event.event_type, _seconds(event)
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            wft_started = at
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            into.workflow_task.append(at - wft_started)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[event.event_id] = event
            into.model_turns += event.activity_task_scheduled_event_attributes.activity_type.name == model_activity
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started[event.activity_task_started_event_attributes.scheduled_event_id] = at
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            sid = event.activity_task_completed_event_attributes.scheduled_event_id
            resumed = next(
                (e for e in events[i + 1 :] if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED), None
            )
            if resumed is None or sid not in started:
                continue
            dispatch, resume = started[sid] - _seconds(scheduled[sid]), _seconds(resumed) - at
            into.dispatch.append(dispatch)
            into.resume.append(resume)
            into.round_trip.append(dispatch + resume)
            if scheduled[sid].activity_task_scheduled_event_attributes.activity_type.name == model_activity:
                into.model_call.append(at - started[sid] - latency)


def read_phases(histories: list[list[HistoryEvent]], model_activity: str, into: Measured) -> None:
    """Add one run's start and end phases (seconds) to `into`: from its start to its first model call
    being scheduled, and from its last model answer to its end. `histories`: the run's workflows, its
    own first (the shaped floor's loop is a child)."""
    run = histories[0]
    model_ids = {
        (n, e.event_id)
        for n, events in enumerate(histories)
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == model_activity
    }
    scheduled = [_seconds(e) for n, events in enumerate(histories) for e in events if (n, e.event_id) in model_ids]
    answered = [
        _seconds(e)
        for n, events in enumerate(histories)
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        and (n, e.activity_task_completed_event_attributes.scheduled_event_id) in model_ids
    ]
    if scheduled and answered:
        into.to_first_model.append(min(scheduled) - _seconds(run[0]))
        into.after_last_model.append(_seconds(run[-1]) - max(answered))


async def measure(
    client: Client, system: System, server: Process, address: str, model: AnthropicLoopback, runs: int
) -> Measured:
    latency, model_url = model.latency, model.base_url
    queue = f"bench-{system.name}-{uuid.uuid4().hex[:6]}"
    work = server.log.parent
    env = worker_env(address, queue, work / f"{system.name}-data", model_url)
    worker = Process(system.worker_args(address, queue), env, work / f"{system.name}.log")
    out = Measured()
    worker.start()
    try:
        await worker.wait_for(system.ready)
        out.single_wall = await run_all(client, system, queue, [f"{queue}-warm"])
        ids = [f"{queue}-{i:03d}" for i in range(runs)]
        before = (cpu_seconds(worker.pid), cpu_seconds(server.pid), own_cpu_seconds(), machine_busy_seconds())
        out.wall = await run_all(client, system, queue, ids)
        after = (cpu_seconds(worker.pid), cpu_seconds(server.pid), own_cpu_seconds(), machine_busy_seconds())
        worker_cpu, server_cpu, bench_cpu, busy = (b - a for a, b in zip(before, after, strict=True))
        out.worker_cpu, out.server_cpu, out.bench_cpu = worker_cpu / runs, server_cpu / runs, bench_cpu / runs
        out.other_cpu = busy - worker_cpu - server_cpu - bench_cpu
        out.peak_rss_mb = peak_rss_mb(worker.pid)
        if system.start_long is not None:
            long_id = f"{queue}-long"
            handle = await system.start_long(client, queue, long_id)
            system.check(await handle.result())
            out.long = Measured()
            for workflow_id in system.histories(long_id):
                history = await client.get_workflow_handle(workflow_id).fetch_history()
                read_history(list(history.events), system.model_activity, latency, out.long)
    finally:
        worker.stop()
    for run_id in ids:
        histories = []
        for workflow_id in system.histories(run_id):
            history = await client.get_workflow_handle(workflow_id).fetch_history()
            histories.append(list(history.events))
            read_history(histories[-1], system.model_activity, latency, out)
        read_phases(histories, system.model_activity, out)
    return out


# --- the two systems ---------------------------------------------------------------------------------


def floor_system(shaped: bool = False) -> System:
    """The floor; `shaped`: the floor in forgeflow's shape (benchmarks/_floor.py's SHAPED_WORKFLOW)."""
    workflow_type = SHAPED_WORKFLOW if shaped else WORKFLOW

    async def start(client: Client, queue: str, run_id: str) -> WorkflowHandle[Any, Any]:
        return await client.start_workflow(workflow_type, SPEC.read_text(), id=run_id, task_queue=queue)

    def check(result: Any) -> None:
        if result != len(TURNS):
            raise RuntimeError(f"floor run took {result} turns, not {len(TURNS)}")

    return System(
        name="shaped" if shaped else "floor",
        worker_args=lambda address, queue: [
            sys.executable,
            "-m",
            "benchmarks._floor",
            f"--address={address}",
            f"--queue={queue}",
        ],
        ready=READY,
        start_run=start,
        check=check,
        histories=lambda run_id: [run_id, loop_id(run_id)] if shaped else [run_id],
        model_activity="floor_model_turn",
    )


def forgeflow_system(repo: Path) -> System:
    inp = IssueInput(repo=str(repo), spec_content=SPEC.read_text(), mode="plan")
    long = inp.model_copy(update={"spec_content": f"{inp.spec_content}\n{LONG_MARKER}\n"})

    async def start(client: Client, queue: str, run_id: str) -> WorkflowHandle[Any, Any]:
        return await client.start_workflow("IssueWorkflow", inp, id=run_id, task_queue=queue, result_type=IssueResult)

    async def start_long(client: Client, queue: str, run_id: str) -> WorkflowHandle[Any, Any]:
        return await client.start_workflow("IssueWorkflow", long, id=run_id, task_queue=queue, result_type=IssueResult)

    def check(result: Any) -> None:
        if not isinstance(result, IssueResult) or result.outcome != Outcome.PLANNED:
            raise RuntimeError(f"forgeflow run ended {getattr(result, 'outcome', result)}")

    return System(
        name="forgeflow",
        worker_args=lambda address, queue: [sys.executable, str(ROOT / "worker.py"), "--queue", queue],
        ready="forgeflow worker on",
        start_run=start,
        check=check,
        histories=lambda run_id: [run_id],  # its agents run inside it
        model_activity="model_turn",
        start_long=start_long,
    )


def add_long_files(repo: Path) -> None:
    """The files the long run reads, one per turn, committed to the sample repository."""
    (repo / "big").mkdir()
    for n in range(LONG_TURNS):
        line = f"line of file {n:02d} " + "x" * 60 + "\n"
        (repo / "big" / f"f{n:02d}.txt").write_text(line * (LONG_FILE_BYTES // len(line)))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "long-run files")


# --- the report ----------------------------------------------------------------------------------------


def _ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]:.1f}"


def report(
    results: dict[str, Measured], runs: int, latency: float, load: tuple[float, float, float], in_memory: bool
) -> None:
    floor = results["floor"].wall
    server = "in memory" if in_memory else "SQLite file"
    print(f"\n{runs} runs at once, model latency {latency:g} s, one worker process each, dev server {server}")
    head = (
        f"{'':10} {'N':>4} {'wall s':>7} {'ratio':>6} {'wkr CPU s/run':>13} {'srv CPU s/run':>13} "
        f"{'events/turn':>11} {'KB/turn':>8} {'peak RSS MB':>11}"
    )
    print(head)
    for name, m in results.items():
        turns = max(m.model_turns, 1)
        print(
            f"{name:10} {runs:>4} {m.wall:>7.2f} {m.wall / floor:>5.2f}x {m.worker_cpu:>13.3f} {m.server_cpu:>13.3f} "
            f"{m.events / turns:>11.1f} {m.history_bytes / turns / 1024:>8.2f} {m.peak_rss_mb:>11.0f}"
        )
    print("\nper activity / workflow task, from the N runs' history event times, ms p50 / p90")
    columns = {
        "dispatch": "dispatch",
        "resume": "resume",
        "round_trip": "round trip",
        "workflow_task": "workflow task",
        "model_call": "model call - latency",
    }
    print(f"{'':10} {'activities':>10} " + " ".join(f"{label:>20}" for label in columns.values()))
    for name, m in results.items():
        cells = [f"{_ms(getattr(m, key), 0.5)} / {_ms(getattr(m, key), 0.9)}" for key in columns]
        print(f"{name:10} {len(m.round_trip):>10} " + " ".join(f"{cell:>20}" for cell in cells))
    print("\nper run, ms p50 / p90: from its start to its first model call, from its last model answer to its end")
    for name, m in results.items():
        phases = [f"{_ms(values, 0.5)} / {_ms(values, 0.9)}" for values in (m.to_first_model, m.after_last_model)]
        print(f"{name:10} {len(m.to_first_model):>10} " + " ".join(f"{cell:>20}" for cell in phases))
    cores = os.cpu_count() or 1
    print(f"\nCPU besides, over the N runs (the machine has {cores} cores)")
    for name, m in results.items():
        print(
            f"{name:10} this process (loopback, client) {m.bench_cpu:.3f} s/run; everything else on the machine "
            f"{m.other_cpu:.1f} s of {m.wall * cores:.0f} core-s"
        )
    for name, m in results.items():
        if m.long is not None:
            turns = max(m.long.model_turns, 1)
            print(
                f"\n{name}, one run alone of {m.long.model_turns} model turns, each reading a file of "
                f"{LONG_FILE_BYTES // 1024} KB: {m.long.history_bytes / turns / 1024:.2f} KB and "
                f"{m.long.events / turns:.1f} events of history per model turn"
            )
            # What each further turn adds, the run's fixed part (starts, fetch, plan) taken out: the
            # long run against the mean short one.
            extra_turns = m.long.model_turns - m.model_turns / runs
            if extra_turns > 0:
                extra_bytes = m.long.history_bytes - m.history_bytes / runs
                print(f"  each further model turn adds {extra_bytes / extra_turns / 1024:.2f} KB of history")
    singles = ", ".join(f"{name} {m.single_wall:.2f}" for name, m in results.items())
    print(f"\nsingle run (the worker's first), wall s: {singles}")
    per_run = ", ".join(f"{name} {m.model_turns / runs:g}" for name, m in results.items())
    print(f"model turns per run: {per_run}; load average before: {' '.join(f'{x:.2f}' for x in load)}")


Round = dict[str, Measured]  # one measurement of each system, by name, the floor's among them


def wall_ratios(rounds: list[Round], name: str) -> list[float]:
    """`name`'s wall over the floor's, in each round."""
    return [r[name].wall / r["floor"].wall for r in rounds]


def median_round(rounds: list[Round], name: str = "forgeflow") -> Round:
    """The round whose ratio for `name` is the median (the lower middle one of an even count)."""
    ordered = sorted(rounds, key=lambda r: r[name].wall / r["floor"].wall)
    return ordered[(len(ordered) - 1) // 2]


def report_rounds(rounds: list[Round]) -> None:
    print(f"\nwall ratio to the floor, in each of {len(rounds)} rounds, and the median")
    for name in rounds[0]:
        ratios = wall_ratios(rounds, name)
        print(f"{name:10} " + " ".join(f"{x:>5.2f}x" for x in ratios) + f"   median {statistics.median(ratios):.2f}x")


async def main(runs: int, latency: float, in_memory: bool, rounds: int = 1) -> None:
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="forgeflow-concurrency-") as tmp:
        work = Path(tmp)
        repo = create_sample_repo(work / "textkit")
        add_long_files(repo)
        server, address = await start_server(work, in_memory)
        try:
            with AnthropicLoopback(respond=planner_reply, latency=latency) as model:
                settings = Settings.model_validate({"FORGEFLOW_DATA_DIR": str(work / "client")})
                client = await Client.connect(address, data_converter=data_converter(settings))
                measured: list[Round] = []
                for _ in range(rounds):
                    measured.append({
                        system.name: await measure(client, system, server, address, model, runs)
                        for system in (floor_system(), floor_system(shaped=True), forgeflow_system(repo))
                    })  # fmt: skip
        finally:
            server.stop()
    report(median_round(measured), runs, latency, load, in_memory)
    if rounds > 1:
        report_rounds(measured)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="runs started at once (default 100)")
    parser.add_argument("--latency", type=float, default=1.0, help="the model's answer time, seconds (default 1)")
    parser.add_argument("--in-memory", action="store_true", help="the dev server without its SQLite file")
    parser.add_argument("--rounds", type=int, default=1, help="measure all three this many times in turn (default 1)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    asyncio.run(main(args.runs, args.latency, args.in_memory, args.rounds))
    sys.stdout.flush()
    os._exit(0)  # the Temporal client's Rust threads can abort CPython's teardown (temporalio/sdk-python#300)
