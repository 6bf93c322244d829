"""The planner's research through Perplexity's chat-completions shape on loopback, with the real httpx client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.research import ResearchActivities, SqliteResearchCache
from config.settings import Settings
from contracts.agents import AgentResult
from contracts.research import ResearchInput, ResearchResult
from starter.workers import build_workers, research_activities
from testkit.loopback.json_api import JsonLoopback, JsonReply
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


async def test_answer_with_citations_then_served_from_cache(tmp_path: Path, perplexity: JsonLoopback) -> None:
    perplexity.replies = [JsonReply(ANSWER)]
    acts = research_activities(settings_for(tmp_path, perplexity))
    first = await ask(acts, "How do I split on the last dash in Python?")
    again = await ask(acts, "  how do I split on the LAST dash in python?  ")
    assert first.available and "rsplit" in first.answer and first.citations == ANSWER["citations"]
    assert not first.cached and again.cached and again.answer == first.answer
    assert len(perplexity.requests) == 1  # the second question never left the worker
    request = perplexity.requests[0]
    assert request.path == "/chat/completions" and request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body["model"] == "sonar" and request.body["messages"][-1]["content"].startswith("How do I split")


async def test_a_huge_answer_is_bounded(tmp_path: Path, perplexity: JsonLoopback) -> None:
    huge = {**ANSWER, "choices": [{"index": 0, "message": {"role": "assistant", "content": "x" * 3_000_000}}]}
    perplexity.replies = [JsonReply({**huge, "citations": [f"https://e.com/{'p' * 5000}"] * 500})]
    result = await ask(research_activities(settings_for(tmp_path, perplexity)), "anything")
    assert len(result.answer) < 16_100 and result.answer.endswith("more characters not shown]")
    assert len(result.citations) == 20 and all(len(c) == 500 for c in result.citations)


async def test_without_a_key_research_is_unavailable(tmp_path: Path) -> None:
    acts = ResearchActivities(None, SqliteResearchCache(tmp_path / "r.sqlite"))
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
