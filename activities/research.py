"""The planner's `research` tool: Perplexity's chat completions API over httpx, cached; or first an
MCP tool the operator names (FORGEFLOW_RESEARCH_MCP, Perplexity's MCP server say), HTTP its fallback.

Answers are cached by normalised query on the worker's object store (FORGEFLOW_STORAGE_URL), so a
retried or repeated question costs nothing on any worker that shares the store. Without
PERPLEXITY_API_KEY the tool answers that research is unavailable, and the planner plans without it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol

import httpx
import structlog
from pydantic import BaseModel, ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities._heartbeat import heartbeats
from contracts.mcp import McpCallResult
from contracts.research import ResearchInput, ResearchResult
from policy.retry import classify_http
from policy.untrusted import bound
from storage.store import ObjectMissing, ObjectStore, StorageError

SYSTEM = "Answer a software engineer's question precisely and briefly. Cite sources."
MAX_ANSWER = 16_000  # characters of an answer the planner reads
MAX_CITATIONS, MAX_CITATION = 20, 500

_log = structlog.get_logger(__name__)


def normalise(query: str) -> str:
    return re.sub(r"\s+", " ", query).strip().lower()


class ResearchCache(Protocol):
    """Answers by cache key. Neither method fails: an entry that cannot be read is a miss (the
    question is asked again), and an answer that cannot be stored is still returned."""

    async def get(self, key: str) -> ResearchResult | None: ...
    async def put(self, key: str, result: ResearchResult) -> None: ...


class _Entry(BaseModel):
    """A cached object: the key it answers, so a hash collision or an edited object reads as a miss."""

    key: str
    result: ResearchResult


class ObjectStoreResearchCache:
    """One object per key, `<prefix>/<sha256 of the key>.json`, on the worker's object store: every
    worker sharing FORGEFLOW_STORAGE_URL shares the answers. Two workers asking the same question at
    once both write it; the objects are equivalent, and a put is whole or absent."""

    def __init__(self, store: ObjectStore, prefix: str = "research") -> None:
        self._store = store
        self._prefix = prefix.strip("/")

    def _object(self, key: str) -> str:
        return f"{self._prefix}/{hashlib.sha256(key.encode()).hexdigest()}.json"

    async def get(self, key: str) -> ResearchResult | None:
        name = self._object(key)
        try:
            data = await self._store.get_async(name)
        except ObjectMissing:
            return None
        except StorageError as err:
            _log.warning("research cache unreadable; asking again", object=name, error=str(err))
            return None
        try:
            entry = _Entry.model_validate_json(data)
        except ValidationError as err:
            _log.warning("research cache entry corrupt; asking again", object=name, errors=err.error_count())
            return None
        if entry.key != key:
            _log.warning("research cache entry answers another query; asking again", object=name)
            return None
        return _bounded(entry.result)  # read back as untrusted as it was written

    async def put(self, key: str, result: ResearchResult) -> None:
        name = self._object(key)
        data = _Entry(key=key, result=result.model_copy(update={"cached": False})).model_dump_json().encode()
        try:
            await self._store.put_async(name, data)
        except StorageError as err:
            _log.warning("research answer not cached", object=name, error=str(err))


def _bounded(result: ResearchResult) -> ResearchResult:
    """The answer and citations cut to what the planner reads."""
    citations = [c[:MAX_CITATION] for c in result.citations[:MAX_CITATIONS]]
    return result.model_copy(update={"answer": bound(result.answer, MAX_ANSWER), "citations": citations})


# Asks an operator's MCP tool (FORGEFLOW_RESEARCH_MCP) the question: its answer, or an error result.
AskTool = Callable[[str], Awaitable[McpCallResult]]


class ResearchActivities:
    def __init__(
        self,
        http: httpx.AsyncClient | None,
        cache: ResearchCache,
        model: str = "sonar",
        tool: tuple[str, AskTool] | None = None,
    ) -> None:
        """`http` carries the base URL and the key; None when the worker has no key. `tool`: (its name,
        how to ask it), the MCP tool asked first (Perplexity's MCP server, say); HTTP is the fallback."""
        self._http = http
        self._cache = cache
        self._model = model
        self._tool = tool

    @activity.defn(name="research")
    @heartbeats  # while the research service answers
    async def research(self, req: ResearchInput) -> ResearchResult:
        why_not = "research is not configured (no PERPLEXITY_API_KEY)"
        if self._tool is not None:
            answered, why_not = await self._through_tool(req.query, *self._tool)
            if answered is not None:
                return answered
        if self._http is None:
            return ResearchResult(available=False, answer=why_not)
        key = f"{self._model}:{normalise(req.query)}"
        hit = await self._cache.get(key)
        if hit is not None:
            return hit.model_copy(update={"cached": True})
        result = await self._ask(req.query)
        await self._cache.put(key, result)
        return result

    async def _through_tool(self, query: str, name: str, ask: AskTool) -> tuple[ResearchResult | None, str]:
        """The MCP tool's answer (cached like any), or None and why not: then HTTP answers, if configured."""
        key = f"{name}:{normalise(query)}"
        hit = await self._cache.get(key)
        if hit is not None:
            return hit.model_copy(update={"cached": True}), ""
        try:
            answer = await ask(query)
        except ApplicationError as err:  # its server cannot be reached or timed out: the fallback answers
            _log.warning("research tool unavailable; falling back", tool=name, error=str(err))
            return None, f"the research tool {name} is unavailable ({err})"
        if answer.is_error or not answer.content.strip():
            _log.warning("research tool failed; falling back", tool=name, error=answer.content[:300])
            return None, f"the research tool {name} failed ({answer.content[:300]})"
        result = ResearchResult(available=True, answer=bound(answer.content, MAX_ANSWER))  # a web page's: untrusted
        await self._cache.put(key, result)
        return result, ""

    async def _ask(self, query: str) -> ResearchResult:
        body = {
            "model": self._model,
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": query}],
        }
        try:
            response = await self._http.post("/chat/completions", json=body)  # type: ignore[union-attr]  # checked by caller
        except httpx.TransportError as err:
            raise _error(None, {}, str(err)) from None
        if response.status_code >= 400:
            raise _error(response.status_code, dict(response.headers), response.text[:300])
        data: dict[str, Any] = response.json()
        answer = bound(str(data["choices"][0]["message"]["content"]), MAX_ANSWER)  # a web page's text: untrusted
        citations = [str(c)[:MAX_CITATION] for c in (data.get("citations") or [])[:MAX_CITATIONS]]
        return ResearchResult(available=True, answer=answer, citations=citations)


def _error(status: int | None, headers: dict[str, str], detail: str) -> ApplicationError:
    decision = classify_http(status, headers, "perplexity")
    delay = timedelta(seconds=decision.delay_seconds) if decision.delay_seconds is not None else None
    return ApplicationError(
        f"{decision.reason}: {detail}",
        type="ResearchFailed",
        non_retryable=not decision.retryable,
        next_retry_delay=delay,
    )
