"""The planner's research through Perplexity's chat-completions shape on loopback, with the real httpx client,
cached on both kinds of object store: a local directory and a real S3-protocol server (moto)."""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.research import ObjectStoreResearchCache, ResearchActivities
from config.settings import Settings
from contracts.agents import AgentResult
from contracts.research import ResearchInput, ResearchResult
from starter.workers import build_workers, mcp_servers, research_activities
from storage.store import ObjectStore
from testkit.loopback.json_api import JsonLoopback, JsonReply
from testkit.s3 import S3Server
from testkit.scripts import agent_input, scripted, submit, tool, turn, write_script

KEY = "pplx-loopback-secret"
ANSWER = {
    "id": "r1",
    "model": "sonar",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Use str.rsplit('-', 1)."}}],
    "citations": ["https://docs.python.org/3/library/stdtypes.html#str.rsplit"],
    "usage": {"prompt_tokens": 12, "completion_tokens": 8},
}


@pytest.fixture
def perplexity() -> Iterator[JsonLoopback]:
    with JsonLoopback() as server:
        yield server


@pytest.fixture(params=["local", "s3"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """FORGEFLOW_STORAGE_URL of a fresh store of each kind: a directory of its own, or a prefix of its
    own in the test bucket (the AWS_* variables set first: obstore reads them when a store is built)."""
    if request.param == "local":
        return (tmp_path / "store").as_uri()
    s3: S3Server = request.getfixturevalue("s3_env")
    return s3.url(f"research-tests/{tmp_path.name}")


def cached_object(query: str, model: str = "sonar") -> str:
    """The documented layout: `research/<sha256 of model:normalised query>.json`."""
    return f"research/{hashlib.sha256(f'{model}:{query}'.encode()).hexdigest()}.json"


def settings_for(tmp_path: Path, server: JsonLoopback, **extra: str) -> Settings:
    values = {
        "FORGEFLOW_DATA_DIR": str(tmp_path / "data"),
        "PERPLEXITY_API_KEY": KEY,
        "PERPLEXITY_BASE_URL": server.base_url,
        **extra,
    }
    return Settings.model_validate(values)


async def ask(acts: ResearchActivities, query: str) -> ResearchResult:
    result: ResearchResult = await ActivityEnvironment().run(acts.research, ResearchInput(query=query))
    return result


async def test_answer_with_citations_then_served_from_cache(
    tmp_path: Path, perplexity: JsonLoopback, storage_url: str
) -> None:
    perplexity.replies = [JsonReply(ANSWER)]
    acts = research_activities(settings_for(tmp_path, perplexity, FORGEFLOW_STORAGE_URL=storage_url))
    first = await ask(acts, "How do I split on the last dash in Python?")
    again = await ask(acts, "  how do I split on the LAST \t dash in\npython?  ")  # one entry for both
    assert first.available and "rsplit" in first.answer and first.citations == ANSWER["citations"]
    assert not first.cached and again.cached and again.answer == first.answer
    assert again.citations == first.citations
    assert len(perplexity.requests) == 1  # the second question never left the worker
    assert await ObjectStore(storage_url).exists_async(cached_object("how do i split on the last dash in python?"))
    request = perplexity.requests[0]
    assert request.path == "/chat/completions" and request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body["model"] == "sonar" and request.body["messages"][-1]["content"].startswith("How do I split")


async def test_a_huge_answer_is_bounded(tmp_path: Path, perplexity: JsonLoopback) -> None:
    huge = {**ANSWER, "choices": [{"index": 0, "message": {"role": "assistant", "content": "x" * 3_000_000}}]}
    perplexity.replies = [JsonReply({**huge, "citations": [f"https://e.com/{'p' * 5000}"] * 500})]
    result = await ask(research_activities(settings_for(tmp_path, perplexity)), "anything")
    assert len(result.answer) < 16_100 and result.answer.endswith("more characters not shown]")
    assert len(result.citations) == 20 and all(len(c) == 500 for c in result.citations)


async def test_a_planted_oversized_entry_is_bounded_when_read(tmp_path: Path, perplexity: JsonLoopback) -> None:
    """The store is shared: what comes back from it is read as untrusted as the API's answer."""
    store = ObjectStore((tmp_path / "store").as_uri())
    planted = {"available": True, "answer": "y" * 1_000_000, "citations": ["c" * 5000] * 500}
    entry = json.dumps({"key": "sonar:anything", "result": planted}).encode()
    await store.put_async(cached_object("anything"), entry)
    result = await ask(research_activities(settings_for(tmp_path, perplexity), store), "anything")
    assert result.cached and not perplexity.requests  # served from the store, and bounded
    assert len(result.answer) < 16_100 and result.answer.endswith("more characters not shown]")
    assert len(result.citations) == 20 and all(len(c) == 500 for c in result.citations)


async def test_a_second_worker_sees_the_first_workers_answer(
    tmp_path: Path, perplexity: JsonLoopback, storage_url: str
) -> None:
    perplexity.replies = [JsonReply(ANSWER)]
    settings = settings_for(tmp_path, perplexity, FORGEFLOW_STORAGE_URL=storage_url)
    first = await ask(research_activities(settings), "rsplit semantics")
    other = research_activities(settings)  # another process's wiring: its own ObjectStore on the same URL
    again = await ask(other, "RSPLIT semantics")
    assert again.cached and again.answer == first.answer
    assert len(perplexity.requests) == 1


@pytest.mark.parametrize(
    "damage",
    [
        b"{not json",
        b'{"key": "sonar:rsplit semantics"}',  # no result
        b'{"key": "sonar:another question", "result": {"available": true, "answer": "forged"}}',  # another query's
        bytes(range(256)),
    ],
    ids=["truncated", "incomplete", "other-query", "binary"],
)
async def test_a_corrupt_entry_is_a_miss_and_is_rewritten(
    tmp_path: Path, perplexity: JsonLoopback, storage_url: str, damage: bytes
) -> None:
    perplexity.fallback = JsonReply(ANSWER)
    acts = research_activities(settings_for(tmp_path, perplexity, FORGEFLOW_STORAGE_URL=storage_url))
    await ask(acts, "rsplit semantics")
    store = ObjectStore(storage_url)
    await store.put_async(cached_object("rsplit semantics"), damage)
    with capture_logs() as logs:
        again = await ask(acts, "rsplit semantics")
    assert not again.cached and again.answer == "Use str.rsplit('-', 1)." and len(perplexity.requests) == 2
    assert any("asking again" in entry["event"] for entry in logs)
    assert await store.get_async(cached_object("rsplit semantics")) != damage  # rewritten
    third = await ask(acts, "rsplit semantics")
    assert third.cached and len(perplexity.requests) == 2


async def test_a_store_that_cannot_be_written_still_answers(tmp_path: Path, perplexity: JsonLoopback) -> None:
    """The answer is returned and the failed put logged; the next ask is a miss, not a failure."""
    perplexity.fallback = JsonReply(ANSWER)
    store = ObjectStore((tmp_path / "store").as_uri())
    (tmp_path / "store" / cached_object("q")).mkdir(parents=True)  # a directory where the object would go
    acts = research_activities(settings_for(tmp_path, perplexity), store)
    with capture_logs() as logs:
        first, again = await ask(acts, "q"), await ask(acts, "q")
    assert first.available and not first.cached and not again.cached and len(perplexity.requests) == 2
    assert [entry["event"] for entry in logs] == ["research answer not cached"] * 2


async def test_an_unreachable_store_is_a_miss_not_a_failure(
    tmp_path: Path, perplexity: JsonLoopback, s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    perplexity.fallback = JsonReply(ANSWER)
    store = ObjectStore("s3://no-such-bucket/x", retries=0)  # every read and write is refused
    acts = research_activities(settings_for(tmp_path, perplexity), store)
    with capture_logs() as logs:
        result = await ask(acts, "q")
    assert result.available and not result.cached and len(perplexity.requests) == 1
    assert [entry["event"] for entry in logs] == [
        "research cache unreadable; asking again",
        "research answer not cached",
    ]
    assert all("NoSuchBucket" in entry["error"] for entry in logs)


async def test_without_a_key_research_is_unavailable(tmp_path: Path) -> None:
    acts = ResearchActivities(None, ObjectStoreResearchCache(ObjectStore(tmp_path.as_uri())))
    result = await ask(acts, "anything")
    assert not result.available and "PERPLEXITY_API_KEY" in result.answer


@pytest.mark.parametrize(("status", "retryable"), [(401, False), (429, True), (503, True)])
async def test_errors_are_classified(tmp_path: Path, perplexity: JsonLoopback, status: int, retryable: bool) -> None:
    perplexity.replies = [JsonReply({"error": {"message": "nope"}}, status=status, headers={"retry-after": "3"})]
    acts = research_activities(settings_for(tmp_path, perplexity))
    with pytest.raises(ApplicationError) as err:
        await ask(acts, "q")
    assert err.value.non_retryable is (not retryable) and f"HTTP {status}" in err.value.message
    if retryable:
        assert err.value.next_retry_delay is not None and err.value.next_retry_delay.total_seconds() == 3


async def test_outage_falls_back_to_planning_without_research(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path, perplexity: JsonLoopback
) -> None:
    """Perplexity answers 503 every time: after the activity's retries the planner reads why and plans anyway."""
    plan = {"summary": "Plan without research", "tasks": [{"id": "t1", "title": "edit"}], "research_used": False}
    script = write_script(
        tmp_path / "planner.json",
        {
            "planner": [
                {
                    "turns": [
                        turn(tool("research", query="rsplit semantics")),
                        turn(submit(**plan), expect=["research failed", "HTTP 503"]),
                    ]
                }
            ]
        },
    )
    queue = f"research-{uuid.uuid4().hex[:8]}"
    settings = settings_for(tmp_path, perplexity, FORGEFLOW_TASK_QUEUE=queue)
    inp = agent_input("planner", sample_repo, scripted(script), brief="Plan the change.")
    perplexity.fallback = JsonReply({"error": "down"}, status=503)
    (worker,) = build_workers(time_skipping_env.client, settings, [queue])
    async with worker:
        result = await time_skipping_env.client.execute_workflow(
            "AgentWorkflow", inp, id=f"planner-{uuid.uuid4().hex[:8]}", task_queue=queue, result_type=AgentResult
        )
    assert result.submission["research_used"] is False
    assert len(perplexity.requests) == 3  # the activity's capped retries, then the fallback


# --- research through an operator's MCP tool first (FORGEFLOW_RESEARCH_MCP), HTTP its fallback -------

MCP_ROOT = Path(__file__).resolve().parents[2]


def mcp_settings(tmp_path: Path, server: JsonLoopback | None, tool: str) -> Settings:
    config = {
        "name": "dict",
        "command": [sys.executable, "-m", "testkit.mcp_server"],
        "env": {"PYTHONPATH": str(MCP_ROOT), "MCP_TEST_COUNTER": str(tmp_path / "calls.txt")},
        "roles": ["planner"],
    }
    values = {
        "FORGEFLOW_DATA_DIR": str(tmp_path / "data"),
        "FORGEFLOW_MCP_SERVERS": json.dumps([config]),
        "FORGEFLOW_RESEARCH_MCP": json.dumps({"tool": tool, "arguments": {"word": "{query}"}}),
    }
    if server is not None:
        values |= {"PERPLEXITY_API_KEY": KEY, "PERPLEXITY_BASE_URL": server.base_url}
    return Settings.model_validate(values)


async def test_the_mcp_research_tool_answers_first_and_is_cached(tmp_path: Path, perplexity: JsonLoopback) -> None:
    settings = mcp_settings(tmp_path, perplexity, "mcp__dict__lookup")
    servers = mcp_servers(settings)
    assert servers is not None
    try:
        acts = research_activities(settings, mcp=servers)
        first = await ask(acts, "durable")
        again = await ask(acts, "  DURABLE ")
    finally:
        await servers.close()
    assert first.available and first.answer == "durable: a word of 7 letters" and not first.cached
    assert again.cached and again.answer == first.answer
    assert (tmp_path / "calls.txt").read_text().split() == ["durable"]  # asked once
    assert perplexity.requests == []  # the HTTP fallback was never needed


async def test_a_failing_mcp_research_tool_falls_back_to_http(tmp_path: Path, perplexity: JsonLoopback) -> None:
    perplexity.replies = [JsonReply(ANSWER)]
    settings = mcp_settings(tmp_path, perplexity, "mcp__dict__fail")
    servers = mcp_servers(settings)
    assert servers is not None
    try:
        with capture_logs() as logs:
            answer = await ask(research_activities(settings, mcp=servers), "How do I split on the last dash?")
    finally:
        await servers.close()
    assert answer.available and "rsplit" in answer.answer and len(perplexity.requests) == 1
    assert any(entry["event"] == "research tool failed; falling back" for entry in logs)


async def test_without_a_fallback_a_failing_research_tool_is_unavailable_and_says_why(tmp_path: Path) -> None:
    settings = mcp_settings(tmp_path, None, "mcp__dict__fail")
    servers = mcp_servers(settings)
    assert servers is not None
    try:
        answer = await ask(research_activities(settings, mcp=servers), "anything")
    finally:
        await servers.close()
    assert not answer.available and "mcp__dict__fail failed" in answer.answer


def test_a_research_tool_no_server_offers_stops_the_worker(tmp_path: Path) -> None:
    settings = mcp_settings(tmp_path, None, "mcp__nowhere__ask")
    with pytest.raises(SystemExit, match="FORGEFLOW_RESEARCH_MCP: research tool 'mcp__nowhere__ask': no MCP server"):
        research_activities(settings, mcp=mcp_servers(settings))
