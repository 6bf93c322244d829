"""`forgeflow demo`: the whole pipeline on the bundled sample, on the embedded server, offline.

Starts (or finds) the Temporal dev server, runs the workflow worker in this process and the sandbox
worker in a child process that holds none of this one's secrets, starts the run on a fresh copy of
the textkit sample, prints its progress stage by stage, and ends with a summary and
the link to the run in the Temporal UI. A scenario (starter.sample.SCENARIOS) is the recorded
conversation that plays the agents: the default shows a coder retry after failing tests, `self-check`
a coder that runs the tests itself and needs one round.

The terminal shows the progress and the summary only: the workers' log lines (this process's and
the sandbox worker's, its stderr included) go to a file under the data directory, whose path the
demo prints, unless `--verbose` asks for them here. A demo that fails names that file again, with
the log's last errors.
"""

from __future__ import annotations

import json
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import TextIO

from config.settings import Settings
from contracts.run import Outcome
from starter.client import connect
from starter.follow import follow
from starter.render import REPLAY_NOTE, console, err_console, summary, ui_link
from starter.sample import Scenario, branch_log, create_sample_repo, demo_input
from starter.sandbox_process import SandboxProcess, SandboxWorkerExited
from starter.server import ensure_server
from storage.store import StorageError
from telemetry.logs import configure_logging

SHOWN_ERRORS = 5  # log lines a failed demo repeats on the terminal


def new_stamp() -> str:
    """Names this demo's sample copy, run and log file."""
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def log_path(settings: Settings, stamp: str) -> Path:
    return settings.data_dir / "logs" / f"demo-{stamp}.log"


def _open_log(path: Path) -> TextIO:
    """The log file, appended to by this process and the sandbox worker. Left open: the command ends
    with os._exit, and a line logged while the workers stop must still have somewhere to go."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("a", encoding="utf-8")


async def run_demo(settings: Settings, *, stamp: str, log: Path | None, scenario: Scenario) -> int:
    """The demo playing `scenario`; its exit status. `log`: the file for the workers' log lines (None: this
    terminal)."""
    from starter.workers import (  # the demo runs the workers
        SERVING_RUNNER,
        WorkerGroup,
        build_workers,
        log_store,
        object_store,
    )

    try:  # as every worker does at start: a wrong FORGEFLOW_STORAGE_URL stops here, named, not a run later
        store = object_store(settings)
        await store.check()
    except StorageError as err:
        err_console.print(f"forgeflow demo cannot start: {err}", highlight=False, soft_wrap=True)
        return 2
    stream = None if log is None else _open_log(log)
    if stream is not None:
        configure_logging(json=True, stream=stream)
    log_store(store)  # into the log file: the terminal shows progress only
    server = await ensure_server(settings)
    where = "started the embedded Temporal dev server" if server.started_by_us else "using the Temporal server"
    console.print(f"[bold]forgeflow demo[/bold] — {where} at {server.address}")
    repo = create_sample_repo(settings.data_dir / "demo" / f"textkit-{stamp}")
    console.print(f"sample repository: {repo}")
    if log is not None:
        console.print(f"worker logs: {log} (--verbose prints them here)", highlight=False, soft_wrap=True)
    console.print(f"[yellow]{REPLAY_NOTE}[/yellow]: the bundled recording plays the four agents")
    console.print(f"scenario [bold]{scenario.name}[/bold]: {scenario.story}", highlight=False, soft_wrap=True)
    client = await connect(settings)
    workflow_id = f"forgeflow-demo-{stamp}"
    # The demo's code is the bundled sample and a recorded conversation, nothing untrusted: it runs
    # where no cgroup can be made too (e.g. a root container), on rlimits alone.
    demo_settings = settings.model_copy(update={"sandbox_weak_limits": True})
    queue = settings.task_queue
    workers = build_workers(client, demo_settings, [queue], store, workflow_runner=SERVING_RUNNER)
    try:
        sandbox_worker = SandboxProcess(demo_settings, log_format="json" if stream else "text", output=stream)
        async with sandbox_worker as sandbox, WorkerGroup(workers):
            handle = await client.start_workflow(
                "IssueWorkflow", demo_input(repo, scenario=scenario.name), id=workflow_id, task_queue=queue
            )
            console.print(f"run started — watch it live in the Temporal UI: {ui_link(settings, workflow_id)}")
            state, status = await sandbox.while_running(follow(handle))
    except SandboxWorkerExited as err:
        console.print(f"[red]{err}[/red]", highlight=False)
        return 1
    if state is None:
        console.print(f"[red]the run ended as {status} before reporting any state[/red]")
        return 1
    console.print(summary(state, workflow_id, settings))
    for branch in state.branches_created:
        commits = branch_log(repo, branch)
        console.print(f"[bold]{branch}[/bold] (your checkout of main is untouched):\n{commits}")
    return 0 if state.outcome == Outcome.APPROVED else 1


def log_errors(path: Path, limit: int = SHOWN_ERRORS) -> list[str]:
    """The last `limit` error lines of a demo's log, shortened for the terminal: JSON lines at level
    error or above, and any line that is not JSON (a crash's traceback, a refusal to start)."""
    found: deque[str] = deque(maxlen=limit)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if line.strip():
                found.append(line.strip())
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "critical"):
            exception = str(entry.get("exception", "")).strip().splitlines()
            found.append(f"{entry.get('event')}" + (f": {exception[-1]}" if exception else ""))
    return list(found)


def tell_where_the_log_is(path: Path) -> None:
    """After a failed demo: its log's last errors, and where the rest is (nothing if it has none)."""
    if not path.exists():  # it failed before it could open its log: the error itself says why
        return
    errors = log_errors(path)
    if errors:
        err_console.print("from the workers' log:", highlight=False)
        for line in errors:
            err_console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
    err_console.print(f"the workers' log: {path}", highlight=False, soft_wrap=True)
