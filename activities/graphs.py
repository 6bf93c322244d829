"""A LangGraph graph as an agent's implementation (the `forgeflow[langgraph]` extra): one activity runs
the compiled graph the run names (IssueInput.graphs), heartbeating.

- **Model calls** go through the worker's own model provider (`GraphContext.ask`), so caching, usage
  and cost are counted as for the built-in loop. The graph reaches forgeflow through
  `config["configurable"]["forgeflow"]`: `ask`, `diff` (the change under review) and `read_file`.
- **Checkpoints** are kept on the run's object store, keyed by the activity (workflow id and activity
  id): a retried activity, on any worker, resumes at the last completed node instead of starting
  over. The usage of the model calls already made is kept beside them, so it is counted once.

The graph's final state must hold `submission`: the role's result (a Review for a reviewer), which the
workflow validates as it does an agent's.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import pickle
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import structlog
from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities._heartbeat import heartbeats
from activities.codehost.host import CodeHosts
from contracts.agents import AgentResult
from contracts.graphs import GraphInput
from contracts.model import Message, ModelProvider, ModelRequest
from contracts.usage import AgentUsage
from storage.store import ObjectMissing, ObjectStore

_log = structlog.get_logger(__name__)


def load_graph(path: str) -> Any:
    """The compiled graph at `module:attribute`; an error naming what is wrong."""
    module_name, _, attribute = path.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as err:
        raise ApplicationError(
            f"graph {path!r} cannot be loaded: {err}", type="InvalidInput", non_retryable=True
        ) from None
    if not (hasattr(found, "ainvoke") and hasattr(found, "copy") and hasattr(found, "aget_state")):
        raise ApplicationError(f"{path!r} is not a compiled LangGraph graph", type="InvalidInput", non_retryable=True)
    return found


class _Progress(BaseModel):
    """What the graph's model calls cost so far, kept beside its checkpoints."""

    turns: int = 0
    usage: AgentUsage = Field(default_factory=AgentUsage)


class GraphContext:
    """What a graph's nodes reach forgeflow by: the model, the change, the files."""

    def __init__(
        self, inp: GraphInput, provider: ModelProvider, hosts: CodeHosts, store: ObjectStore, key: str
    ) -> None:
        self._inp, self._provider, self._hosts, self._store, self._key = inp, provider, hosts, store, key
        self.progress = _Progress()

    async def load(self) -> None:
        with contextlib.suppress(ObjectMissing):  # a first attempt: nothing spent yet
            self.progress = _Progress.model_validate_json(await self._store.get_async(self._key))

    async def ask(self, system: str, prompt: str) -> str:
        """One model call through the worker's provider: its text. Its usage is counted (and kept) at once."""
        inp = self._inp
        request = ModelRequest(
            run_id=inp.run_id,
            role=inp.role,
            invocation=inp.invocation,
            turn=self.progress.turns,
            model=inp.model,
            system=system,
            tools=[],
            messages=[Message(role="user", content=[{"type": "text", "text": prompt}])],
            agent=inp.agent,
        )
        response = await self._provider.complete(request)
        self.progress.turns += 1
        self.progress.usage.add(AgentUsage(usage=response.usage, cost_usd=response.cost_usd, turns=1))
        await self._store.put_async(self._key, self.progress.model_dump_json().encode())
        return "\n".join(str(b.get("text", "")) for b in response.content if b.get("type") == "text")

    async def diff(self) -> str:
        """The change under review: the commit against the commit the run started from."""
        inp = self._inp
        head = inp.commit_sha or inp.workspace.base_sha
        host = self._hosts.for_repo(inp.workspace.repo)
        return await host.diff(inp.workspace.repo, inp.workspace.origin_sha or inp.workspace.base_sha, head)

    async def read_file(self, path: str) -> str | None:
        inp = self._inp
        data = await self._hosts.for_repo(inp.workspace.repo).read_file(
            inp.workspace.repo, inp.commit_sha or inp.workspace.base_sha, path
        )
        return None if data is None else data.decode("utf-8", "replace")


def store_saver(store: ObjectStore, key: str) -> Any:
    """LangGraph's in-memory saver, written whole to `key` on the object store after every checkpoint
    and write, and read back from it first: the checkpoints of one graph run (a few small states)."""
    from langgraph.checkpoint.memory import InMemorySaver

    class StoreSaver(InMemorySaver):
        # One write at a time, each of the state as it is when its turn comes: LangGraph saves a
        # step's writes and its checkpoint concurrently, and an older snapshot must never land last.
        persisting = asyncio.Lock()

        async def load(self) -> None:
            try:
                storage, writes, blobs = pickle.loads(await store.get_async(key))  # our own store's bytes
            except ObjectMissing:
                return
            for thread, namespaces in storage.items():
                for namespace, checkpoints in namespaces.items():
                    self.storage[thread][namespace].update(checkpoints)
            self.writes.update(writes)
            self.blobs.update(blobs)

        async def _persist(self) -> None:
            async with self.persisting:
                state = ({t: dict(ns) for t, ns in self.storage.items()}, dict(self.writes), dict(self.blobs))
                await store.put_async(key, pickle.dumps(state))

        async def aput(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
            saved = self.put(config, checkpoint, metadata, new_versions)
            await self._persist()
            return saved

        async def aput_writes(self, config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
            self.put_writes(config, writes, task_id, task_path)
            await self._persist()

    return StoreSaver(factory=defaultdict)


class GraphActivities:
    def __init__(self, providers: Mapping[str, ModelProvider], hosts: CodeHosts, store: ObjectStore) -> None:
        self._providers, self._hosts, self._store = providers, hosts, store

    @activity.defn
    @heartbeats  # a graph may run for minutes; a lost worker is noticed in seconds
    async def run_graph(self, inp: GraphInput) -> AgentResult:
        provider = self._providers.get(inp.model.provider)
        if provider is None:
            raise ApplicationError(
                f"model provider {inp.model.provider!r} is not configured on this worker",
                type="ProviderUnavailable",
                non_retryable=True,
            )
        info = activity.info()
        thread = f"{info.workflow_id}/{info.activity_id}"  # one graph run: every retry of this activity
        saver = store_saver(self._store, f"graphs/{thread}/checkpoints.pickle")
        await saver.load()
        context = GraphContext(inp, provider, self._hosts, self._store, f"graphs/{thread}/usage.json")
        await context.load()
        graph = load_graph(inp.graph).copy(update={"checkpointer": saver})
        config = {"configurable": {"thread_id": thread, "forgeflow": context}}
        earlier = await graph.aget_state(config)
        resuming = bool(earlier.next)
        if resuming:
            _log.info("graph resumes", graph=inp.graph, at=list(earlier.next))
        # "sync": a node's checkpoint is on the store before the next node starts (the default writes it
        # while the next node runs, so a worker lost then would run the finished node again).
        final = await graph.ainvoke(None if resuming else {"brief": inp.brief}, config, durability="sync")
        submission = final.get("submission") if isinstance(final, dict) else None
        if not isinstance(submission, dict):
            raise ApplicationError(
                f"graph {inp.graph!r} ended without a `submission` in its state",
                type="InvalidSubmission",
                non_retryable=True,
            )
        return AgentResult(role=inp.role, submission=submission, workspace=inp.workspace, usage=context.progress.usage)
