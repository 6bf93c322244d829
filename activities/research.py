"""The planner's `research` tool: Perplexity's chat completions API over httpx, cached.

Answers are cached by normalised query (SQLite by default; `ResearchCache` is the interface for a
shared backend), so a retried or repeated question costs nothing. Without PERPLEXITY_API_KEY the
tool answers that research is unavailable, and the planner plans without it.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities._heartbeat import heartbeats
from contracts.research import ResearchInput, ResearchResult
from policy.retry import classify_http
from policy.untrusted import bound

SYSTEM = "Answer a software engineer's question precisely and briefly. Cite sources."
MAX_ANSWER = 16_000  # characters of an answer the planner reads
MAX_CITATIONS, MAX_CITATION = 20, 500


def normalise(query: str) -> str:
    return re.sub(r"\s+", " ", query).strip().lower()


class ResearchCache(Protocol):
    def get(self, key: str) -> ResearchResult | None: ...
    def put(self, key: str, result: ResearchResult) -> None: ...


class SqliteResearchCache:
    """One table in one file; safe for several workers on one host (SQLite locking)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS research (key TEXT PRIMARY KEY, result TEXT NOT NULL)")

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self._path, timeout=10)

    def get(self, key: str) -> ResearchResult | None:
        with self._db() as db:
            row = db.execute("SELECT result FROM research WHERE key = ?", (key,)).fetchone()
        return ResearchResult.model_validate_json(row[0]) if row else None

    def put(self, key: str, result: ResearchResult) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO research VALUES (?, ?)", (key, result.model_dump_json()))


class ResearchActivities:
    def __init__(self, http: httpx.AsyncClient | None, cache: ResearchCache, model: str = "sonar") -> None:
        """`http` carries the base URL and the key; None when the worker has no key."""
        self._http = http
        self._cache = cache
        self._model = model

    @activity.defn(name="research")
    @heartbeats  # while the research service answers
    async def research(self, req: ResearchInput) -> ResearchResult:
        if self._http is None:
            return ResearchResult(available=False, answer="research is not configured (no PERPLEXITY_API_KEY)")
        key = f"{self._model}:{normalise(req.query)}"
        hit = await asyncio.to_thread(self._cache.get, key)
        if hit is not None:
            return hit.model_copy(update={"cached": True})
        result = await self._ask(req.query)
        await asyncio.to_thread(self._cache.put, key, result)
        return result

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
