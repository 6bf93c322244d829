"""The worker side's wiring: clients built once per process and injected into the activity classes,
the workers for each task queue, and serving them until stopped.

`python worker.py` and `forgeflow worker`/`forgeflow demo` are the entry points that call this; it
lives below them so that nothing imports an entry point (tests/test_import_graph.py). Activities
receive values (a SandboxConfig, the roles' prompts, a script delay), never the Settings object: this
module is where settings are read.

The sandbox queue's worker launches bubblewrap, so it never runs in a process that holds a secret:
serving both queues runs the workflow queue here and the sandbox queue in a child process whose
environment is an allowlist (see starter/sandbox_process.py), and a sandbox worker whose environment
holds one of forgeflow's secrets refuses to start.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.blobstore import BlobStore
from activities.codehost._commit_cache import CommitCache
from activities.codehost.host import CodeHostActivities, CodeHosts
from activities.codehost.local import LocalGitHost
from activities.eval import EvalActivities
from activities.github_events import GitHubEventActivities
from activities.graphs import GraphActivities
from activities.model.answers import AnswerLedger, TurnReads
from activities.model.scripted import ScriptedProvider
from activities.model.turns import ModelActivities, RolePrompt
from activities.research import AskTool, ObjectStoreResearchCache, ResearchActivities
from activities.tools import ToolActivities
from activities.trees import TreeArchives
from config.settings import Settings, get_settings
from contracts.agents import Role
from contracts.mcp import McpCallResult
from contracts.model import ModelProvider
from payloads.converter import with_key_ring_read
from policy.pricing import PriceTable
from policy.redact import secret_values
from roles import ROLES
from starter.sandbox_process import SandboxProcess, SandboxWorkerExited, sandbox_refusal
from storage.store import ObjectStore, StorageError
from telemetry.agents import AgentOfActivity
from workflows._agent_header import AgentHeaders
from workflows.agent import AgentWorkflow
from workflows.eval import EvalWorkflow
from workflows.github_event import GitHubEventWorkflow
from workflows.issue import IssueWorkflow

if TYPE_CHECKING:
    from githubkit import AppInstallationAuthStrategy

    from activities.codehost.github import GitHubHost
    from activities.mcp import McpServers
    from activities.sandbox.run_tests import SandboxConfig

log = structlog.get_logger("forgeflow")
# How long a workflow task waits for the worker that has the run cached before any worker may take
# it. After a kill -9 that worker is gone, and the SDK's 10 s default would add 10 s to every
# recovery; a live worker takes its cached runs' tasks in milliseconds, and a miss costs a replay.
STICKY_TIMEOUT = timedelta(seconds=3)
# Temporal's sandbox imports a workflow's modules afresh for every run it starts or replays, so that
# no run sees another's module state: two runs' worth of imports per forgeflow run (IssueWorkflow and
# each agent). Ours hold constants only, so the worker imports them once and shares them: under 100
# concurrent runs that took 12-19% of the worker's CPU and 22 MB of its memory. The sandbox's
# restrictions then no longer guard the workflow modules' own calls in production; the replay tests
# and test_the_workflows_keep_to_temporals_strict_sandbox (tests/workflows/test_issue_workflow.py)
# run them under the full sandbox (STRICT_SANDBOX).
SHARED_WORKFLOW_MODULES = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows")
)
STRICT_SANDBOX = SandboxedWorkflowRunner()
# The workers forgeflow serves (`python worker.py`, `forgeflow worker`, the demo) run workflows outside
# the sandbox. Its run-time guard costs the worker a third of its time on the workflows: the SDK (1.35)
# compiles a snippet of Python for each activation and each of its payloads (_Instance._run_code, an
# exec of a string), and proxies every module access. Under 100 concurrent runs that was 24% of the
# time the worker held the GIL, and the worker's one core is what those runs wait for (issue 14:
# worker CPU per run -16% without it, `python -m benchmarks.concurrency --rounds 3`). Determinism is
# guarded by the tests instead: build_workers' default runs every workflow test under the sandbox's
# restrictions (SHARED_WORKFLOW_MODULES), test_the_workflows_keep_to_temporals_strict_sandbox under the
# whole sandbox, and tests/replay replays recorded histories under it.
SERVING_RUNNER = UnsandboxedWorkflowRunner()


def build_workers(
    client: Client,
    settings: Settings,
    queues: Sequence[str] | None = None,
    store: ObjectStore | None = None,
    workflow_runner: WorkflowRunner = SHARED_WORKFLOW_MODULES,
    mcp: McpServers | None = None,
) -> list[Worker]:
    """One worker for workflows + model/tool/code-host activities, one for the sandbox queue; `store`
    (default: opened from the settings) is the process's object store, checked at start by `_serve`;
    `workflow_runner`: how workflows run (STRICT_SANDBOX: each run imports the workflow modules anew);
    `mcp`: the process's MCP tool servers (default: those of FORGEFLOW_MCP_SERVERS; its owner closes them)."""
    wanted = set(queues or (settings.task_queue, settings.sandbox_task_queue))
    unknown = wanted - {settings.task_queue, settings.sandbox_task_queue}
    if unknown:
        raise SystemExit(
            f"unknown queue(s) {sorted(unknown)}: serve {settings.task_queue} and/or {settings.sandbox_task_queue}"
        )
    workers = []
    store = store or object_store(settings)  # shared by every activity class
    blobs = BlobStore(store)
    if settings.task_queue in wanted:
        # One entry per kind of repository reference (contracts/repo.py); None: not configured here.
        github = github_host(settings, blobs)
        hosts = CodeHosts({"local": LocalGitHost(blobs), "github": github})
        events = GitHubEventActivities(github)
        providers = model_providers(settings)
        mcp = mcp or mcp_servers(settings)
        tools = ToolActivities(hosts, blobs)
        model = ModelActivities(
            blobs,
            providers,
            role_prompts(),
            settings.context_tokens,
            secrets=worker_secrets(settings),
            extra_tools=None if mcp is None else mcp_tool_definitions(mcp),
            reads=TurnReads(tools.answer, AnswerLedger(store)),
        )
        host = CodeHostActivities(hosts, TreeArchives(store))
        research = research_activities(settings, store, mcp)
        evals = EvalActivities(blobs)
        graphs = GraphActivities(providers, hosts, store)
        workers.append(
            Worker(
                client,
                task_queue=settings.task_queue,
                workflows=[IssueWorkflow, AgentWorkflow, EvalWorkflow, GitHubEventWorkflow],
                activities=[
                    model.model_turn,
                    tools.run_tool,
                    host.fetch_task,
                    host.land_changes,
                    host.publish_change,
                    host.post_review,
                    host.post_comment,
                    host.commit_snapshot,
                    host.report_stage,
                    research.research,
                    evals.load_suite,
                    events.check_access,
                    events.react,
                    events.review_comments,
                    events.find_run,
                    events.answer_gate,
                    *mcp_activities(mcp),
                    graphs.run_graph,
                ],
                sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT,
                workflow_runner=workflow_runner,
                interceptors=[AgentHeaders(), AgentOfActivity()],
            )
        )
    if settings.sandbox_task_queue in wanted:
        from activities.sandbox.run_tests import SandboxActivities  # sandbox hosts need only this part

        sandbox = SandboxActivities(sandbox_config(settings, store))
        workers.append(
            Worker(
                client,
                task_queue=settings.sandbox_task_queue,
                activities=[sandbox.run_tests, sandbox.run_command],
                interceptors=[AgentOfActivity()],
            )
        )
    return workers


def mcp_servers(settings: Settings) -> McpServers | None:
    """The operator's MCP tool servers (FORGEFLOW_MCP_SERVERS), started on first use; None without any.
    The MCP SDK is imported only when there are some."""
    text = settings.mcp_servers.get_secret_value() if settings.mcp_servers else None
    if not text:
        return None
    from activities.mcp import McpServers
    from policy.mcp import parse_servers

    try:
        return McpServers(parse_servers(text))
    except ValueError as err:
        raise SystemExit(f"FORGEFLOW_MCP_SERVERS: {err}") from None


def mcp_tool_definitions(mcp: McpServers) -> Callable[[Role], Awaitable[list[dict[str, Any]]]]:
    """A role's MCP tools as the model is offered them (name, description, input schema)."""

    async def definitions(role: Role) -> list[dict[str, Any]]:
        offered = await mcp.tools_for(role)
        return [{"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in offered]

    return definitions


def mcp_activities(mcp: McpServers | None) -> list[Callable[..., Any]]:
    if mcp is None:
        return []
    from activities.mcp import McpActivities

    return [McpActivities(mcp).call_mcp_tool]


def object_store(settings: Settings) -> ObjectStore:
    """The process's one object store: FORGEFLOW_STORAGE_URL, else the data directory (StorageError
    naming the setting when the URL cannot name a store)."""
    return ObjectStore(settings.storage_location)


async def checked_store(settings: Settings) -> ObjectStore:
    """The object store, proven usable (a probe written, read back and deleted) and logged by kind and
    URL, never credentials: a wrong endpoint, bucket or key stops the worker at start, not a run later."""
    store = object_store(settings)
    await store.check()
    log_store(store)
    return store


def log_store(store: ObjectStore) -> None:
    """The line a worker logs at start about its store: its kind and URL, never credentials."""
    log.info("object store", kind=store.kind, url=store.url)


def role_prompts() -> dict[Role, RolePrompt]:
    """Each role's system prompt and tools, built once: the same bytes every turn keep the prompt cache warm."""
    return {
        name: RolePrompt(
            system=spec.system(),
            tools=spec.tools(),
            with_commands=RolePrompt(system=spec.system(commands=True), tools=spec.tools(commands=True)),
        )
        for name, spec in ROLES.items()
    }


def sandbox_config(settings: Settings, store: ObjectStore | None = None) -> SandboxConfig:
    """The sandbox activity's values, read from the FORGEFLOW_SANDBOX_* settings; `store` (default: the
    settings' object store) holds the trees under test and the overlays' contents."""
    from activities.sandbox.backend import BackendOptions
    from activities.sandbox.run_tests import SandboxConfig

    store = store or object_store(settings)
    return SandboxConfig(
        blobs=BlobStore(store),
        trees=TreeArchives(store),
        cache_dir=settings.sandbox_cache_dir,
        trees_dir=settings.sandbox_trees_dir,
        cache_max_bytes=settings.cache_max_mb * 1024**2,
        isolation=BackendOptions(bwrap=settings.sandbox_bwrap, allow_unsandboxed=settings.allow_unsandboxed_tests),
        limits=settings.sandbox_limits,
        install_timeout=settings.sandbox_install_timeout,
        install_network=settings.sandbox_install_network,
        registries=tuple(settings.sandbox_registries),
        cgroup_root=settings.sandbox_cgroup_root,
        weak_limits=settings.sandbox_weak_limits,
    )


def worker_secrets(settings: Settings) -> list[str]:
    """Values no model may read: this worker's keys and tokens, and any secret-named variable's value."""
    held = [secret.get_secret_value() for secret in settings.secrets() if secret is not None]
    return secret_values(dict(os.environ), held)


def model_providers(settings: Settings) -> dict[str, ModelProvider]:
    """The scripted replay always; Claude when the worker has an API key (one client per process)."""
    providers: dict[str, ModelProvider] = {
        "scripted": ScriptedProvider(settings.script_delay_seconds, settings.script_ledger)
    }
    if settings.anthropic_api_key is not None:
        # Imported only here: the SDK's types are thousands of modules (2.8 s of CPU to import), which a
        # worker that only replays scripts (the demo, the tests, a sandbox worker) never needs.
        import anthropic

        from activities.model.anthropic_provider import AnthropicProvider

        client = anthropic.AsyncAnthropic(
            api_key=settings.anthropic_api_key.get_secret_value(),
            base_url=settings.anthropic_base_url,
            max_retries=0,  # Temporal owns retries
        )
        prices = (
            PriceTable.model_validate_json(settings.price_table.read_text()) if settings.price_table else PriceTable()
        )
        providers["anthropic"] = AnthropicProvider(client, prices)
    return providers


def github_host(settings: Settings, blobs: BlobStore | None = None) -> GitHubHost | None:
    """GitHub through one githubkit client per worker, its own retries and cache off (Temporal owns retries).

    A GitHub App (preferred) mints short-lived installation tokens inside the worker; otherwise a token.
    """
    auth = github_auth(settings)
    if auth is None:
        return None
    # Imported only here, as anthropic is: githubkit is 18 MB of a worker's memory, which a worker
    # without GitHub settings (local repositories, the demo, the sandbox queue) never needs.
    from githubkit import AppInstallationAuthStrategy, GitHub
    from githubkit.cache import MemCacheStrategy

    from activities.codehost.github import GitHubHost

    # Its own cache of installation tokens: githubkit's default is one per process, keyed by app and
    # installation but not by API URL, so two clients (two GitHub servers, or two tests) would share tokens.
    client: GitHub[Any] = GitHub(
        auth, base_url=settings.github_api_url, auto_retry=False, http_cache=False, cache_strategy=MemCacheStrategy()
    )
    store = blobs or BlobStore(object_store(settings))
    cache = CommitCache(settings.data_dir / "repos", max_bytes=settings.cache_max_mb * 1024**2)
    return GitHubHost(client, cache, store, as_app=isinstance(auth, AppInstallationAuthStrategy))


def github_auth(settings: Settings) -> AppInstallationAuthStrategy | str | None:
    app = (settings.github_app_id, settings.github_app_installation_id, settings.github_app_private_key)
    if all(part is not None for part in app):
        from githubkit import AppInstallationAuthStrategy

        assert settings.github_app_private_key is not None and settings.github_app_installation_id is not None
        key = settings.github_app_private_key.get_secret_value()
        if not key.lstrip().startswith("-----BEGIN"):
            key = Path(key).expanduser().read_text()  # a path to the PEM file
        return AppInstallationAuthStrategy(settings.github_app_id, key, settings.github_app_installation_id)
    if any(part is not None for part in app):
        raise SystemExit(
            "GitHub App settings need all of GITHUB_APP_ID, GITHUB_APP_INSTALLATION_ID, GITHUB_APP_PRIVATE_KEY"
        )
    return settings.github_token.get_secret_value() if settings.github_token else None


def research_activities(
    settings: Settings, store: ObjectStore | None = None, mcp: McpServers | None = None
) -> ResearchActivities:
    """Perplexity over one shared httpx client when the worker has a key; answers cached on `store`
    (default: the settings' object store), so every worker sharing it shares them. With
    FORGEFLOW_RESEARCH_MCP, that tool of `mcp` (the worker's MCP servers) is asked first."""
    http = None
    if settings.perplexity_api_key is not None:
        http = httpx.AsyncClient(
            base_url=settings.perplexity_base_url,
            headers={"authorization": f"Bearer {settings.perplexity_api_key.get_secret_value()}"},
            timeout=httpx.Timeout(120.0, connect=10.0),
        )
    cache = ObjectStoreResearchCache(store or object_store(settings))
    return ResearchActivities(http, cache, model=settings.research_model, tool=research_tool(settings, mcp))


def research_tool(settings: Settings, mcp: McpServers | None) -> tuple[str, AskTool] | None:
    """FORGEFLOW_RESEARCH_MCP's tool and how to ask it, or None; a value no configured server can serve
    stops the worker at start, naming it."""
    if not settings.research_mcp:
        return None
    from policy.mcp import parse_research_tool, research_arguments

    servers = [] if mcp is None else mcp.configs
    try:
        found = parse_research_tool(settings.research_mcp, servers)
    except ValueError as err:
        raise SystemExit(f"FORGEFLOW_RESEARCH_MCP: {err}") from None
    if found is None or mcp is None:
        return None
    live, chosen = mcp, found

    async def ask(query: str) -> McpCallResult:
        return await live.call("planner", chosen.tool, research_arguments(chosen.arguments, query))

    return found.tool, ask


async def run_workers(workers: list[Worker], sandbox: SandboxProcess | None = None) -> int:
    """Run until SIGINT/SIGTERM, then shut down gracefully (0); or until the sandbox child exits (1),
    so that a supervisor restarts the whole worker rather than keep one that runs no tests."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with WorkerGroup(workers):
        if sandbox is None:
            await stop.wait()
            return 0
        try:
            await sandbox.while_running(stop.wait())
        except SandboxWorkerExited as err:
            log.error("stopping: the sandbox worker exited", error=str(err))
            return 1
    return 0


class WorkerGroup:
    """Run several workers together; leaving the block shuts them all down gracefully."""

    def __init__(self, workers: list[Worker]) -> None:
        self._workers = workers

    async def __aenter__(self) -> None:
        for w in self._workers:
            await w.__aenter__()

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(w.shutdown() for w in self._workers))


def served_queues(settings: Settings, queues: Sequence[str] | None) -> list[str]:
    """The queues to serve, in a stable order (default: both)."""
    ordered = [settings.task_queue, settings.sandbox_task_queue]
    wanted = set(queues or ordered)
    return [q for q in ordered if q in wanted] + sorted(wanted - set(ordered))


async def serve(queues: list[str] | None = None, log_format: str = "json") -> int:
    """Serve `queues` (default: both) until stopped; the exit status."""
    settings = get_settings()
    served = served_queues(settings, queues)
    if served == [settings.sandbox_task_queue]:  # this process would launch sandboxes itself
        refusal = sandbox_refusal(os.environ, settings.sandbox_task_queue)
        if refusal is not None:
            print(refusal, file=sys.stderr, flush=True)
            return 2
    return await _serve(with_key_ring_read(settings), served, log_format)


async def _serve(settings: Settings, served: list[str], log_format: str) -> int:
    from starter.backlog import backlog_poller
    from starter.client import connect
    from starter.server import ensure_server
    from telemetry.logs import configure_logging
    from telemetry.setup import client_interceptors, metrics_runtime

    configure_logging(json=log_format == "json")
    try:  # every worker reads the store (the sandbox too: the agent's files), so every worker checks it
        store = await checked_store(settings)
    except StorageError as err:
        print(f"forgeflow worker cannot start: {err}", file=sys.stderr, flush=True)
        return 2
    server = await ensure_server(settings)
    runtime = metrics_runtime(settings)
    client = await connect(settings, runtime=runtime, interceptors=client_interceptors("forgeflow-worker"))
    split = settings.sandbox_task_queue in served and len(served) > 1
    queues = [q for q in served if q != settings.sandbox_task_queue or not split]
    mcp = mcp_servers(settings) if settings.task_queue in queues else None
    workers = build_workers(client, settings, queues, store, workflow_runner=SERVING_RUNNER, mcp=mcp)
    print(
        f"forgeflow worker on {server.address} serving {[w.task_queue for w in workers]}; UI {server.ui_url}",
        flush=True,
    )
    # The backlog of every queue served, the child's too: this process holds the metrics endpoint.
    try:
        async with backlog_poller(client, runtime, settings, served):
            if not split:
                return await run_workers(workers)
            async with SandboxProcess(settings, log_format=log_format) as sandbox:
                print(
                    f"{settings.sandbox_task_queue} served by child process {sandbox.pid}, holding no secret",
                    flush=True,
                )
                return await run_workers(workers, sandbox)
    finally:
        if mcp is not None:
            await mcp.close()
