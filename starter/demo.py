"""`forgeflow demo`: the whole pipeline on the bundled sample, on the embedded server, offline.

Starts (or finds) the Temporal dev server, runs the workflow worker in this process and the sandbox
worker in a child process that holds none of this one's secrets, starts the run on a fresh copy of
the textkit sample, prints its progress stage by stage, and ends with a summary and
the link to the run in the Temporal UI.
"""

from __future__ import annotations

from datetime import datetime

from config.settings import Settings
from contracts.run import Outcome
from starter.client import connect
from starter.follow import follow
from starter.render import REPLAY_NOTE, console, summary, ui_link
from starter.sample import branch_log, create_sample_repo, demo_input
from starter.sandbox_process import SandboxProcess, SandboxWorkerExited
from starter.server import ensure_server


async def run_demo(settings: Settings) -> int:
    import worker  # the demo is self-contained: it runs the workers itself

    server = await ensure_server(settings)
    where = "started the embedded Temporal dev server" if server.started_by_us else "using the Temporal server"
    console.print(f"[bold]forgeflow demo[/bold] — {where} at {server.address}")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    repo = create_sample_repo(settings.data_dir / "demo" / f"textkit-{stamp}")
    console.print(f"sample repository: {repo}")
    console.print(f"[yellow]{REPLAY_NOTE}[/yellow]: the bundled recording plays the four agents")
    client = await connect(settings)
    workflow_id = f"forgeflow-demo-{stamp}"
    # The demo's code is the bundled sample and a recorded conversation, nothing untrusted: it runs
    # where no cgroup can be made too (e.g. a root container), on rlimits alone.
    demo_settings = settings.model_copy(update={"sandbox_weak_limits": True})
    workers = worker.build_workers(client, demo_settings, [settings.task_queue])
    try:
        async with SandboxProcess(demo_settings, log_format="text") as sandbox, worker.WorkerGroup(workers):
            handle = await client.start_workflow(
                "IssueWorkflow", demo_input(repo), id=workflow_id, task_queue=settings.task_queue
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
        log = branch_log(repo, branch)
        console.print(f"[bold]{branch}[/bold] (your checkout of main is untouched):\n{log}")
    return 0 if state.outcome == Outcome.APPROVED else 1
