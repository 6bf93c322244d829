"""The `forgeflow` command: demo, run, start, status, watch, approve/reject/feedback, server, worker, webhook.

Every command works with zero configuration: it uses the server at TEMPORAL_ADDRESS or starts
the embedded one. Runs started here are ordinary Temporal workflows: `temporal workflow ...`
commands and the Temporal UI see the same thing.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import shlex
import sys
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from config.settings import get_settings
from contracts import api
from contracts.agents import DEFAULT_MODEL
from contracts.eval import EVAL_WORKFLOW_TYPE
from contracts.repo import RepoRef, RepoRefError, parse_repo
from contracts.run import DEFAULT_MAX_RETRIES, DEFAULT_MODE, Decision, GateDecision, IssueInput, Outcome
from starter.client import connect
from starter.follow import follow, query_state
from starter.render import console, err_console, server_line, summary, ui_link
from starter.sample import DEFAULT_SCENARIO, SCENARIOS, UnknownScenarioError, scenario_named
from starter.server import ServerError, ensure_server, stop_server
from telemetry.logs import configure_logging
from telemetry.setup import client_interceptors

app = typer.Typer(
    help="forgeflow: issue → plan → code → test → review, as durable Temporal workflows.", no_args_is_help=True
)
T = TypeVar("T")
SUCCESS = {Outcome.APPROVED, Outcome.PLANNED, Outcome.REVIEWED}


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; a server or RPC failure is one red line and exit code 1."""
    configure_logging(json=False)
    try:
        return asyncio.run(coro)
    except ServerError as err:
        err_console.print(f"[red]{err}[/red]", highlight=False)
    except WorkflowAlreadyStartedError as err:
        err_console.print(f"[red]a run with id {err.workflow_id} already exists[/red]", highlight=False)
    except RPCError as err:
        err_console.print(f"[red]{err.message}[/red]", highlight=False)
    raise typer.Exit(1)


async def _client() -> Client:
    settings = get_settings()
    server = await ensure_server(settings)
    if server.kind != "external":
        err_console.print(server_line(server), style=None if server.started_by_us else "dim", soft_wrap=True)
    return await connect(settings, interceptors=client_interceptors("forgeflow-cli"))


def repo_option(text: str) -> RepoRef:
    """The --repo option parsed, once; a relative path to an existing checkout is made absolute
    first. A text that names no repository is one red line and exit code 2."""
    if not Path(text).is_absolute() and Path(text).exists():
        text = str(Path(text).resolve())
    try:
        return parse_repo(text)
    except RepoRefError as err:
        err_console.print(f"[red]invalid repo: {err}[/red]", highlight=False)
        raise typer.Exit(2) from None


def build_input(
    repo: str,
    issue: int | None,
    pr: int | None,
    spec: str | None,
    spec_file: Path | None,
    mode: str,
    max_retries: int,
    require_plan_approval: bool,
    script: Path | None,
    model: str | None = None,
    test_command: str | None = None,
    install_command: str | None = None,
    commands: str | None = None,
) -> IssueInput:
    """Validate on the client first, so a bad option is named before anything starts."""
    if spec_file is not None:
        spec = spec_file.read_text()
    raw = {
        "repo": repo_option(repo), "issue_number": issue, "pr_number": pr, "spec_content": spec, "mode": mode,
        "max_retries": max_retries, "require_plan_approval": require_plan_approval,
        "model_script": str(script.resolve()) if script else None, "model": model,
        "test_command": shlex.split(test_command) if test_command else None,
        "install_command": shlex.split(install_command) if install_command else None,
        "commands": _roles(commands),
    }  # fmt: skip
    try:
        return IssueInput.model_validate({k: v for k, v in raw.items() if v is not None})
    except ValidationError as err:
        for e in err.errors():
            field = ".".join(str(p) for p in e["loc"]) or "input"
            err_console.print(f"[red]invalid {field}: {e['msg']}[/red]", highlight=False)
        raise typer.Exit(2) from None


def _roles(text: str | None) -> list[str] | None:
    """`--commands coder,tester` → the roles; `--commands none` → [] (commands off); unset → the default."""
    if text is None:
        return None
    if text.strip().lower() == "none":
        return []
    return [part.strip() for part in text.split(",") if part.strip()]


Repo = Annotated[str, typer.Option(help="owner/name, or a path to a local git repository.")]
Issue = Annotated[int | None, typer.Option(help="Issue number (local repos: .forgeflow/issues/N.md).")]
Pr = Annotated[int | None, typer.Option(help="Pull request to review (mode review).")]
Spec = Annotated[str | None, typer.Option(help="The task as text, instead of an issue.")]
SpecFile = Annotated[Path | None, typer.Option(help="Read the task from this file.", exists=True)]
Mode = Annotated[str, typer.Option(help="autonomous | plan | review")]
Retries = Annotated[int, typer.Option(help="Coder rounds after the first.")]
Gate = Annotated[bool, typer.Option(help="Stop for a human's approval of the plan.")]
Script = Annotated[
    Path | None, typer.Option(help="Replay this scripted conversation instead of calling Claude.", exists=True)
]
WorkflowId = Annotated[str | None, typer.Option(help="Workflow id (default: generated).")]
Model = Annotated[str | None, typer.Option(help=f"Claude model id (default: {DEFAULT_MODEL}).")]
TestCommand = Annotated[
    str | None, typer.Option(help="Test command in the sandbox (default: .forgeflow.yml, else detected).")
]
InstallCommand = Annotated[
    str | None, typer.Option(help="Dependency install step before the tests, e.g. 'pip install -e .[test]'.")
]
Commands = Annotated[
    str | None,
    typer.Option(
        help="Agents that may run sandboxed commands, comma-separated (default: coder,tester; 'none' turns them "
        "off; planner and reviewer run them read-only)."
    ),
]


async def _start(inp: IssueInput, workflow_id: str | None) -> str:
    settings = get_settings()
    client = await _client()
    workflow_id = workflow_id or f"forgeflow-{inp.repo.name}-{uuid.uuid4().hex[:8]}"
    ui_url = f"http://127.0.0.1:{settings.ui_port}" if inp.ui_url is None else inp.ui_url
    params = inp.model_copy(update={"ui_url": ui_url}).model_dump(mode="json", exclude_none=True)
    await client.start_workflow(api.WORKFLOW_TYPE, params, id=workflow_id, task_queue=settings.task_queue)
    console.print(f"started [bold]{workflow_id}[/bold]\n{ui_link(settings, workflow_id)}", soft_wrap=True)
    if inp.model_script:
        console.print("[yellow]model: scripted replay (no API calls)[/yellow]")
    return workflow_id


async def _watch(workflow_id: str) -> int:
    client = await _client()
    state, status = await follow(client.get_workflow_handle(workflow_id))
    if state is None:
        err_console.print(f"[red]run {workflow_id} ended as {status}[/red]")
        return 1
    console.print(summary(state, workflow_id, get_settings()))
    return 0 if state.outcome in SUCCESS else 1


def run_command(then: Callable[[IssueInput, str | None], None]) -> Callable[..., None]:
    """The command `start` and `run` share: the run options, checked and built into an IssueInput
    before anything starts, then handed with the workflow id to `then`, whose name and docstring
    the command takes."""

    def command(
        repo: Repo, issue: Issue = None, pr: Pr = None, spec: Spec = None, spec_file: SpecFile = None,
        mode: Mode = DEFAULT_MODE, max_retries: Retries = DEFAULT_MAX_RETRIES, require_plan_approval: Gate = False,
        script: Script = None, workflow_id: WorkflowId = None, model: Model = None,
        test_command: TestCommand = None, install_command: InstallCommand = None, commands: Commands = None,
    ) -> None:  # fmt: skip
        inp = build_input(
            repo, issue, pr, spec, spec_file, mode, max_retries, require_plan_approval, script, model,
            test_command, install_command, commands,
        )  # fmt: skip
        then(inp, workflow_id)

    # Not functools.wraps: its __wrapped__ would make typer read `then`'s parameters instead.
    command.__name__, command.__qualname__, command.__doc__ = then.__name__, then.__qualname__, then.__doc__
    return command


@app.command()
@run_command
def start(inp: IssueInput, workflow_id: str | None) -> None:
    """Start a run and print its id (a worker must be running: `forgeflow worker`)."""
    _run(_start(inp, workflow_id))


@app.command()
@run_command
def run(inp: IssueInput, workflow_id: str | None) -> None:
    """Start a run and follow it to the end."""

    async def go() -> int:
        return await _watch(await _start(inp, workflow_id))

    raise typer.Exit(_run(go()))


@app.command("eval")
def eval_(
    suite: Annotated[Path | None, typer.Argument(help="Instances in SWE-bench's JSONL format.", exists=True)] = None,
    out: Annotated[Path, typer.Option(help="Where the results go.")] = Path("eval-results"),
    concurrency: Annotated[int, typer.Option(help="Instances running at once.", min=1, max=64)] = 4,
    variant: Annotated[
        list[str] | None,
        typer.Option(help="name=JSON overrides of each run's input (repeatable), e.g. fast='{\"max_retries\": 0}'."),
    ] = None,
    resume: Annotated[
        str | None, typer.Option(help="Follow an eval started earlier, by id, and write its results.")
    ] = None,
    sample: Annotated[
        bool, typer.Option("--sample", help="The bundled offline suite, on a fresh copy of the sample repository.")
    ] = False,
) -> None:
    """Run a suite of task instances through forgeflow and grade each: resolve rate and cost per resolved instance."""
    from starter import eval_command  # the eval's modules load only for this command

    async def go() -> int:
        client = await _client()
        settings = get_settings()
        chosen = suite
        if sample and resume is None:
            from starter.demo import new_stamp
            from starter.eval_sample import write_sample_suite

            chosen = write_sample_suite(settings.data_dir / "eval" / f"sample-{new_stamp()}")
            console.print(f"the bundled suite (scripted replays, no API calls): {chosen}", highlight=False)
        try:
            eval_id = resume or await eval_command.start(client, settings, _needed(chosen), concurrency, variant or [])
        except eval_command.EvalInputError as err:
            err_console.print(f"[red]{err}[/red]", highlight=False)
            return 2
        result = await eval_command.follow(client, eval_id)
        eval_command.report(result, eval_id, out)
        return 0

    raise typer.Exit(_run(go()))


def _needed(suite: Path | None) -> Path:
    if suite is None:
        from starter.eval_command import EvalInputError

        raise EvalInputError("give a suite file (SUITE.jsonl), or --resume ID to follow an eval started earlier")
    return suite


@app.command()
def watch(workflow_id: str) -> None:
    """Follow a run until it ends, printing each stage and gate."""
    raise typer.Exit(_run(_watch(workflow_id)))


@app.command()
def status(
    workflow_id: str, json: Annotated[bool, typer.Option("--json", help="Print the raw state.")] = False
) -> None:
    """Show a run's live state: stage, retries, gate, tests, review, usage."""

    async def go() -> int:
        handle = (await _client()).get_workflow_handle(workflow_id)
        if (await handle.describe()).workflow_type == EVAL_WORKFLOW_TYPE:
            return await _eval_status(handle, json)
        state = await query_state(handle)
        if state is None:
            err_console.print(f"[red]no state for {workflow_id} yet: is a worker running? (forgeflow worker)[/red]")
            return 1
        if json:
            sys.stdout.write(state.model_dump_json(indent=2) + "\n")
        else:
            console.print(summary(state, workflow_id, get_settings()))
        return 0

    raise typer.Exit(_run(go()))


async def _eval_status(handle: Any, raw: bool) -> int:
    from starter import eval_command, eval_results

    progress = await eval_command.progress_of(handle)
    if progress is None:
        err_console.print(f"[red]no progress for {handle.id} yet: is a worker running? (forgeflow worker)[/red]")
        return 1
    if raw:
        sys.stdout.write(progress.model_dump_json(indent=2) + "\n")
        return 0
    console.print(f"{handle.id}: graded {len(progress.results)} of {progress.planned}", highlight=False)
    for s in eval_results.summaries(progress):
        console.print(f"  {s.variant}: resolved {s.resolved} of {s.instances} so far", highlight=False)
    return 0


def _decide(workflow_id: str, decision: Decision, comment: str, signal: bool) -> None:
    answer = GateDecision(decision=decision, comment=comment, by=getpass.getuser())

    async def go() -> int:
        handle = (await _client()).get_workflow_handle(workflow_id)
        if signal:
            await handle.signal(decision, answer)
            console.print(f"sent the {decision} signal (signals are not validated: check `forgeflow status`)")
            return 0
        try:
            outcome = await handle.execute_update(api.UPDATE_DECIDE, answer, result_type=str)
        except WorkflowUpdateFailedError as err:
            err_console.print(f"[red]refused: {getattr(err.cause, 'message', err.cause)}[/red]", highlight=False)
            return 1
        console.print(outcome)
        return 0

    raise typer.Exit(_run(go()))


Comment = Annotated[str, typer.Option(help="Why; shown to the agents as guidance.")]
Signal = Annotated[bool, typer.Option("--signal", help="Send a plain signal instead of a validated update.")]


@app.command()
def approve(workflow_id: str, comment: Comment = "", signal: Signal = False) -> None:
    """Approve the plan at the plan-approval gate."""
    _decide(workflow_id, "approve", comment, signal)


@app.command()
def reject(workflow_id: str, comment: Comment = "", signal: Signal = False) -> None:
    """Reject at a gate: the run ends."""
    _decide(workflow_id, "reject", comment, signal)


@app.command()
def feedback(
    workflow_id: str, comment: Annotated[str, typer.Option(help="What to change.")], signal: Signal = False
) -> None:
    """Send guidance: at the escalation gate it buys one more coder round."""
    _decide(workflow_id, "feedback", comment, signal)


@app.command()
def server(stop: Annotated[bool, typer.Option("--stop", help="Stop the embedded server.")] = False) -> None:
    """Start (or find) the Temporal server and print its address and UI."""
    settings = get_settings()
    if stop:
        try:
            stopped = stop_server(settings)
        except ServerError as err:
            err_console.print(f"[red]{err}[/red]", highlight=False)
            raise typer.Exit(1) from None
        console.print(
            f"stopped the embedded Temporal server at {settings.temporal_address}"
            if stopped
            else f"no embedded server of {settings.data_dir} was running"
        )
        return
    console.print(server_line(_run(ensure_server(settings))), soft_wrap=True)


@app.command()
def worker(
    queue: Annotated[list[str] | None, typer.Option(help="Serve only this task queue (repeatable).")] = None,
) -> None:
    """Run the workers until Ctrl-C: the workflow queue in this process, the sandbox queue in a child
    process that holds none of this one's secrets."""
    from starter.workers import serve  # the heavy imports only for the commands that run workers

    try:
        code = asyncio.run(serve(queues=queue))
    except ServerError as err:
        err_console.print(f"[red]{err}[/red]", highlight=False)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


@app.command("codec-server")
def codec_server(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8081,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Decrypt runs for the Temporal UI (Settings → codec endpoint) and `temporal --codec-endpoint`."""
    from payloads.codec import CodecError
    from payloads.codec_server import CodecServerConfigError, make_server
    from payloads.converter import codec

    settings = get_settings()
    configure_logging(json=False)
    try:
        ring = codec(settings)
    except CodecError as err:
        err_console.print(f"[red]{err}[/red]", highlight=False)
        raise typer.Exit(2) from None
    if ring is None:
        err_console.print(
            "[red]neither FORGEFLOW_CODEC_KEYS nor FORGEFLOW_CODEC_KEYS_FILE is set: there is nothing to decrypt "
            "with[/red]"
        )
        raise typer.Exit(2)
    token = settings.codec_server_token.get_secret_value() if settings.codec_server_token else None
    try:
        server = make_server(ring, host, port, token=token, origins=settings.codec_cors_origins)
    except CodecServerConfigError as err:
        err_console.print(f"[red]{err}[/red]", highlight=False)
        raise typer.Exit(2) from None
    console.print(f"codec server on http://{host}:{server.server_port} (active key {ring.active})", soft_wrap=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.server_close()


@app.command()
def webhook(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    host: Annotated[str, typer.Option(help="Address to listen on (behind a reverse proxy: 127.0.0.1).")] = "127.0.0.1",
) -> None:
    """Receive GitHub's webhook deliveries at POST /webhook (GET /health answers too): labelled issues and
    `/forgeflow` comments start runs, `/approve|/reject|/feedback` answer gates, reviews start rounds."""
    import uvicorn

    from starter.webhook import WebhookConfigError, checked_run_options, create_app

    settings = get_settings()
    configure_logging(json=False)
    secret = settings.github_webhook_secret.get_secret_value() if settings.github_webhook_secret else ""

    async def connected() -> Client:
        await ensure_server(settings)
        return await connect(settings, interceptors=client_interceptors("forgeflow-webhook"))

    try:
        options = checked_run_options(settings.run_options, settings.ui_url)
        asgi = create_app(
            None,
            secret=secret,
            task_queue=settings.task_queue,
            trigger_label=settings.trigger_label,
            run_options=options,
            connect=connected,
        )
    except WebhookConfigError as err:
        err_console.print(f"[red]{err}[/red]", highlight=False)
        raise typer.Exit(2) from None
    console.print(f"forgeflow webhook on http://{host}:{port}/webhook", soft_wrap=True)
    uvicorn.run(asgi, host=host, port=port, log_level="warning", proxy_headers=True)


@app.command("codec-key")
def codec_key(key_id: Annotated[str, typer.Argument(help="A name for the key, e.g. 2026-11.")]) -> None:
    """Print a new AES-256 key as a FORGEFLOW_CODEC_KEYS entry (put the active key first)."""
    from payloads.codec import new_key

    sys.stdout.write(json.dumps({key_id: new_key()}) + "\n")


Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Print the workers' log lines here, not to a file.")]
ScenarioName = Annotated[str, typer.Option(help=f"The recorded run to play: {' | '.join(SCENARIOS)}.")]


@app.command()
def demo(verbose: Verbose = False, scenario: ScenarioName = DEFAULT_SCENARIO) -> None:
    """The main job, offline: a scripted run on the bundled sample. The default scenario goes through
    fail → retry → pass → approve; `self-check` has the coder run the tests itself and pass in one round."""
    from starter.demo import log_path, new_stamp, run_demo, tell_where_the_log_is

    try:  # named before anything starts: no server, no log file for a typo
        played = scenario_named(scenario)
    except UnknownScenarioError as err:
        err_console.print(f"[red]{err}[/red]", highlight=False)
        raise typer.Exit(2) from None
    settings, stamp = get_settings(), new_stamp()
    log = None if verbose else log_path(settings, stamp)
    code = 1
    try:
        code = _run(run_demo(settings, stamp=stamp, log=log, scenario=played))
    finally:  # whatever stopped it, a failed demo names its log (the person saw no log line)
        if code != 0 and log is not None:
            tell_where_the_log_is(log)
    raise typer.Exit(code)


def main() -> None:
    """The console script. Ends the process with os._exit once the command is done: the Temporal
    client's Rust threads can abort CPython's teardown (temporalio/sdk-python#300), which would
    turn a finished command's exit code into SIGABRT."""
    code: int = 0
    try:
        app(prog_name="forgeflow")
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)
