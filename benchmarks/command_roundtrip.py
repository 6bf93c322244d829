"""The round trip of an agent's command through the sandbox: run_command `true`, against two floors.

    python -m benchmarks.command_roundtrip [--rounds N] [--repo PATH] [--edits K]

One invocation starts the embedded default's dev server (benchmarks.concurrency.start_server: SQLite
file, transfer queue tuned) and uploads the repository's HEAD commit to a fresh object store, as the
code host does (its tree id). The repository is forgeflow's own checkout unless `--repo` names
another. Two workers run in this process, as forgeflow's do: the benchmark's workflow
(benchmarks/_roundtrip.py) on its queue, and on the sandbox queue beside it
SandboxActivities(sandbox_config(...)).run_command and a no-op activity. The settings are this
environment's (FORGEFLOW_SANDBOX_* apply) but for a fresh data folder and object store.

First one run_command `true` on a worker that has not seen the commit yet (cold: the tree fetched
and unpacked, first imports), after a no-op that warms the queues. Then one workflow runs N rounds
(default 20), each calling in turn: the no-op; run_command `true`; run_command `true` with K edited
files in its overlay (default 5; their contents put in the store first).

Measured per call from the workflow's history (the server's clock), p50 / p90 in milliseconds:
- round trip: ActivityTaskScheduled to the WorkflowTaskStarted after ActivityTaskCompleted, what an
  agent's workflow waits for a call, from scheduling it to running again with the result;
- in activity: ActivityTaskStarted to ActivityTaskCompleted, the sandbox worker's part.
Floor 1 is the no-op's round trip: Temporal's own. Floor 2 is `bash -c true` under bubblewrap,
launched as the sandbox launches a command (its argv under run_limited), timed in this process
without Temporal, and split into bubblewrap alone and the limits (benchmarks/_command_parts.py).
Then each piece of a command is timed alone on the same kept commit, and a fresh copy of the commit
(what each command would cost without reusing working copies). The server's process and the
temporary directory go at the end, on an error, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.worker import Worker

from activities.blobstore import BlobStore
from activities.codehost._snapshot import publish_tree
from activities.codehost.local import LocalGitHost
from activities.sandbox.run_tests import SandboxActivities
from activities.trees import TreeArchives
from benchmarks import _command_parts
from benchmarks._roundtrip import WORKFLOW, Call, CommandRoundTripWorkflow, RoundTripInput, noop
from benchmarks.concurrency import start_server
from config.settings import Settings
from contracts.api import sandbox_queue
from contracts.commands import CommandResult, RunCommandInput
from contracts.repo import parse_repo
from payloads.converter import data_converter
from starter.workers import object_store, sandbox_config
from telemetry.logs import configure_logging
from testkit.tools import git

ROOT = Path(__file__).resolve().parents[1]  # forgeflow's own checkout: a real repository
GOAL_MS = 500.0  # issue 15: the sandbox's overhead on `true`, on this machine kind
NOOP, PLAIN, EDITED, COLD = "noop", "command", "edited", "cold"
# On Ctrl-C the sandbox worker lets the command in flight end (`true`: well under a second) rather
# than cancel it, so the run's temporary folder is not removed under it.
STOP_GRACE = timedelta(seconds=30)


@dataclass
class Calls:
    """One kind of call's times, seconds."""

    round_trip: list[float] = field(default_factory=list)
    in_activity: list[float] = field(default_factory=list)


@dataclass
class Measured:
    calls: dict[str, Calls]  # by label: NOOP, PLAIN, EDITED, COLD
    floor: _command_parts.Floor  # floor 2: its `limited` times
    pieces: _command_parts.Pieces


@dataclass(frozen=True)
class Repository:
    path: Path
    sha: str
    files: list[str]  # the commit's regular files

    @classmethod
    def at_head(cls, path: Path) -> Repository:
        entries = [line.split(maxsplit=3) for line in git(path, "ls-tree", "-r", "HEAD").splitlines()]
        return cls(path, git(path, "rev-parse", "HEAD"), [e[3] for e in entries if e[0] in ("100644", "100755")])

    def edits(self, count: int) -> dict[str, bytes]:
        """`count` of the commit's files (Python ones first), each with a line added."""
        chosen = sorted(self.files, key=lambda p: (not p.endswith(".py"), p))[:count]
        show = ["git", "-C", str(self.path), "show"]
        return {p: subprocess.run([*show, f"HEAD:{p}"], capture_output=True, check=True).stdout + b"\n" for p in chosen}


def _seconds(event: HistoryEvent) -> float:
    return event.event_time.seconds + event.event_time.nanos / 1e9


def read_history(events: list[HistoryEvent], into: dict[str, Calls]) -> None:
    """Add each completed activity's round trip and time in the activity to its label's Calls."""
    scheduled: dict[int, tuple[str, float]] = {}  # event id -> (label, time)
    started: dict[int, float] = {}
    for i, event in enumerate(events):
        kind, at = event.event_type, _seconds(event)
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            label = event.activity_task_scheduled_event_attributes.activity_id.rpartition("-")[0]
            scheduled[event.event_id] = (label, at)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started[event.activity_task_started_event_attributes.scheduled_event_id] = at
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            sid = event.activity_task_completed_event_attributes.scheduled_event_id
            resumed = next(e for e in events[i + 1 :] if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED)
            label, at_scheduled = scheduled[sid]
            calls = into.setdefault(label, Calls())
            calls.round_trip.append(_seconds(resumed) - at_scheduled)
            calls.in_activity.append(at - started[sid])


async def run_workflow(client: Client, queue: str, inp: RoundTripInput, into: dict[str, Calls]) -> None:
    """One run of the workflow; its calls' times added to `into`. Every command must have run `true`."""
    handle = await client.start_workflow(
        WORKFLOW, inp, id=f"{queue}-{uuid.uuid4().hex[:6]}", task_queue=queue, result_type=list[CommandResult]
    )
    results: list[CommandResult] = await handle.result()
    for result in results:
        if (result.status, result.exit_code, result.changes) != ("exited", 0, {}):
            raise RuntimeError(f"run_command `true` ended {result.status} ({result.exit_code}): {result.preview}")
    read_history(list((await handle.fetch_history()).events), into)


async def measure(repo: Repository, work: Path, rounds: int, edits: int) -> Measured:
    """Everything the report prints, on a dev server and object store made under `work`."""
    data = work / "data"  # the environment's settings apply, but for a fresh data folder and object store
    settings = Settings.model_validate({"FORGEFLOW_DATA_DIR": str(data), "FORGEFLOW_STORAGE_URL": data.as_uri()})
    store = object_store(settings)
    blobs = BlobStore(store)
    tree = await publish_tree(LocalGitHost(blobs), TreeArchives(store), parse_repo(str(repo.path)), repo.sha)
    overlay: dict[str, str | None] = {p: await blobs.put_async(data) for p, data in repo.edits(edits).items()}
    command = RunCommandInput(repository=str(repo.path), commit_sha=repo.sha, tree=tree, command=_command_parts.COMMAND)
    config = sandbox_config(settings, store)
    calls: dict[str, Calls] = {}
    server, address = await start_server(work, in_memory=False)
    try:
        client = await Client.connect(address, data_converter=data_converter(settings))
        queue = f"bench-roundtrip-{uuid.uuid4().hex[:6]}"
        sandbox = SandboxActivities(config)
        async with (
            Worker(client, task_queue=queue, workflows=[CommandRoundTripWorkflow]),
            Worker(
                client,
                task_queue=sandbox_queue(queue),
                activities=[sandbox.run_command, noop],
                graceful_shutdown_timeout=STOP_GRACE,
            ),
        ):
            first = [Call(label=f"first{NOOP}"), Call(label=COLD, command=command)]
            await run_workflow(client, queue, RoundTripInput(rounds=1, calls=first), calls)
            edited = command.model_copy(update={"overlay": overlay})
            each = [Call(label=NOOP), Call(label=PLAIN, command=command), Call(label=EDITED, command=edited)]
            await run_workflow(client, queue, RoundTripInput(rounds=rounds, calls=each), calls)
    finally:
        server.stop()
    floor = await _command_parts.bwrap_floor(config, rounds)
    pieces = await _command_parts.pieces(config, tree, repo.sha, overlay, rounds)
    return Measured(calls=calls, floor=floor, pieces=pieces)


# --- the report ----------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The q-quantile of `values` (nearest rank), in milliseconds."""
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _cells(values: list[float], floor: float) -> tuple[str, str]:
    """p50 / p90, and p50 as a ratio to `floor` (ms); dashes for a column a row has no values in."""
    if not values:
        return "-", "-"
    return f"{pct(values, 0.5):.1f} / {pct(values, 0.9):.1f}", f"{pct(values, 0.5) / floor:.2f}x"


def report(m: Measured, repo: Repository, rounds: int, edits: int, load: tuple[float, float, float]) -> None:
    where = "forgeflow's own checkout" if repo.path.resolve() == ROOT else "given by --repo"
    print(f"\nrepository {repo.path} ({where}) at {repo.sha[:12]}: {len(repo.files)} files")
    print(f"{rounds} rounds, each: no-op, run_command `true`, run_command `true` with {edits} edited files")
    cores = os.cpu_count() or 1
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load)} ({cores} cores; the machine may be shared)")
    floor1, floor2 = pct(m.calls[NOOP].round_trip, 0.5), pct(m.floor.limited, 0.5)
    rows = [
        ("floor 1: no-op activity", m.calls[NOOP]),
        ("floor 2: bwrap `true`, no Temporal", Calls(in_activity=m.floor.limited)),
        ("run_command `true`", m.calls[PLAIN]),
        (f"run_command `true`, {edits} edits", m.calls[EDITED]),
    ]
    print(f"\n{'ms':36} {'round trip p50/p90':>19} {'x floor 1':>9} {'in activity p50/p90':>20} {'x floor 2':>9}")
    for name, calls in rows:
        trips, trips_ratio = _cells(calls.round_trip, floor1)
        inside, inside_ratio = _cells(calls.in_activity, floor2)
        print(f"{name:36} {trips:>19} {trips_ratio:>9} {inside:>20} {inside_ratio:>9}")
    cold = m.calls[COLD]
    print(
        f"cold: the worker's first run_command `true` on the commit (fetch and unpack it): round trip "
        f"{pct(cold.round_trip, 0.5):.0f} ms, in activity {pct(cold.in_activity, 0.5):.0f} ms"
    )
    _breakdown(m, edits, floor1 + floor2)
    trip = pct(m.calls[PLAIN].round_trip, 0.5)
    verdict = "met" if trip < GOAL_MS else "not met"
    print(f"\nrun_command `true` round trip p50 {trip:.0f} ms — goal < {GOAL_MS:.0f} ms: {verdict}")


def _breakdown(m: Measured, edits: int, floors: float) -> None:
    """Each piece's p50, their sum against the activity's own time, and what a fresh copy would cost."""
    print(f"\nwhere run_command's time goes, each piece timed alone on the same kept commit (p50 ms, {edits} edits):")
    for name, times in m.pieces.timed.items():
        print(f"  {name:40} {pct(times, 0.5):7.1f}")
    total = sum(pct(times, 0.5) for times in m.pieces.timed.values())
    inside = pct(m.calls[EDITED].in_activity, 0.5)
    print(f"  {'sum':40} {total:7.1f}   (the activity with edits: {inside:.1f}; the rest: {inside - total:.1f})")
    bare = pct(m.floor.bare, 0.5)
    limits = pct(m.floor.limited, 0.5) - bare
    print(f"  of floor 2: bubblewrap alone {bare:.1f}, the limits (cgroup, fork for the preexec hook) {limits:.1f}")
    beyond = pct(m.calls[PLAIN].round_trip, 0.5) - floors
    print(f"  run_command's round trip beyond both floors (no edits): {beyond:.1f}")
    print(f"  a fresh copy of the commit (cp -a, then removed), which reusing working copies saves: "
          f"{pct(m.pieces.fresh_copy, 0.5):.1f}")  # fmt: skip


async def main(repo_path: Path, rounds: int, edits: int) -> None:
    # `timeout` and service managers stop with SIGTERM: cancel like Ctrl-C, so the finally blocks
    # stop the server and the temporary directory goes.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    # The activities' log lines (two per command) would bury the table: warnings and errors only.
    configure_logging(json=True, level=logging.WARNING)
    repo = Repository.at_head(repo_path)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="forgeflow-command-roundtrip-") as tmp:
        measured = await measure(repo, Path(tmp), rounds, edits)
    report(measured, repo, rounds, edits, load)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="calls of each kind (default 20)")
    parser.add_argument("--repo", type=Path, default=ROOT, help="a git repository (default: forgeflow's own)")
    parser.add_argument("--edits", type=int, default=5, help="edited files in the second command's overlay")
    args = parser.parse_args()
    code = 0
    try:
        asyncio.run(main(args.repo, args.rounds, args.edits))
    except (KeyboardInterrupt, asyncio.CancelledError):
        code = 130
    except Exception:
        traceback.print_exc()
        code = 1
    with contextlib.suppress(OSError):
        sys.stdout.flush()
    os._exit(code)  # the Temporal client's Rust threads can abort CPython's teardown (temporalio/sdk-python#300)
