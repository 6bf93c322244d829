"""Claude through the real `anthropic` client against a loopback Messages API, inside real workflows.

Each test runs an AgentWorkflow on the time-skipping server, so retries are Temporal's (the SDK's
are off) and a `retry-after` shows up as the gap between scheduling and the successful attempt.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from benchmarks.cache_share import cached_share
from config.settings import Settings
from contracts.agents import AgentResult, ModelSpec
from starter.workers import build_workers
from testkit.loopback.anthropic_api import AnthropicLoopback, Reply
from testkit.runs import run_agent_on
from testkit.scripts import agent_input
from testkit.tools import git

API_KEY = "sk-ant-loopback-0123456789"
MODEL = "claude-sonnet-4-6"
CHANGE = {"summary": "done", "commit_message": "Do it"}


def use(name: str, tool_input: dict[str, Any], n: int) -> Reply:
    return Reply(
        content=[
            {"type": "text", "text": f"calling {name}"},
            {"type": "tool_use", "id": f"toolu_{n:02d}", "name": name, "input": tool_input},
        ],
        usage={
            "input_tokens": 1200,
            "output_tokens": 40,
            "cache_creation_input_tokens": 900,
            "cache_read_input_tokens": 300,
        },
    )


@pytest.fixture
def api() -> Iterator[AnthropicLoopback]:
    with AnthropicLoopback() as server:
        yield server


async def run_coder(
    env: WorkflowEnvironment, tmp_path: Path, repo: Path, api: AnthropicLoopback, **env_vars: str
) -> tuple[AgentResult, str]:
    queue = f"claude-{uuid.uuid4().hex[:8]}"
    settings = Settings.model_validate(
        {
            "FORGEFLOW_DATA_DIR": str(tmp_path / "data"),
            "FORGEFLOW_TASK_QUEUE": queue,
            "ANTHROPIC_API_KEY": API_KEY,
            "ANTHROPIC_BASE_URL": api.base_url,
            **env_vars,
        }
    )
    inp = agent_input("coder", repo, ModelSpec(provider="anthropic", model=MODEL))
    workflow_id = f"coder-{uuid.uuid4().hex[:8]}"
    (worker,) = build_workers(env.client, settings, [queue])
    return await run_agent_on(worker, inp, workflow_id), workflow_id


async def model_turn_events(env: WorkflowEnvironment, workflow_id: str) -> list[Any]:
    history = await env.client.get_workflow_handle(workflow_id).fetch_history()
    return list(history.events)


async def test_tool_loop_to_a_structured_result_with_stable_cached_prefix(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path, api: AnthropicLoopback
) -> None:
    api.replies = [
        use("read_file", {"path": "calc/__init__.py"}, 1),
        use("submit", {"summary": "no message"}, 2),  # malformed: corrected on the next turn
        use("submit", CHANGE, 3),
    ]
    result, workflow_id = await run_coder(time_skipping_env, tmp_path, sample_repo, api)
    assert result.submission == CHANGE
    assert result.usage.turns == 3
    assert result.usage.usage.cache_read_input_tokens == 900 and result.usage.usage.cache_creation_input_tokens == 2700
    expected_cost = 3 * (1200 * 3 + 40 * 15 + 900 * 3.75 + 300 * 0.3) / 1e6
    assert result.usage.cost_usd == pytest.approx(expected_cost)

    bodies = [r.body for r in api.requests]
    assert len(bodies) == 3
    assert all(API_KEY in r.headers["authorization"] for r in api.requests)
    # The stable prefix is byte-identical every turn and ends in cache breakpoints.
    prefixes = {json.dumps([b["system"], b["tools"]], sort_keys=True) for b in bodies}
    assert len(prefixes) == 1
    assert bodies[0]["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert bodies[0]["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert [t["name"] for t in bodies[0]["tools"]][-1] == "submit"
    # Turn 2 carries turn 1 plus the tool result; the malformed submission comes back as a tool error.
    assert bodies[1]["messages"][1]["content"][1]["id"] == "toolu_01"
    assert bodies[1]["messages"][2]["content"][0]["tool_use_id"] == "toolu_01"
    assert "return a + b" in bodies[1]["messages"][2]["content"][0]["content"]
    error = bodies[2]["messages"][-1]["content"][0]
    assert error["is_error"] is True and "commit_message" in error["content"]
    # The key never enters workflow history.
    history = await time_skipping_env.client.get_workflow_handle(workflow_id).fetch_history()
    assert API_KEY not in history.to_json()


async def test_rate_limit_waits_out_retry_after_then_succeeds(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path, api: AnthropicLoopback
) -> None:
    api.replies = [Reply.error(429, "rate_limit_error", retry_after="45"), use("submit", CHANGE, 1)]
    result, workflow_id = await run_coder(time_skipping_env, tmp_path, sample_repo, api)
    assert result.submission == CHANGE and len(api.requests) == 2
    events = await model_turn_events(time_skipping_env, workflow_id)
    scheduled = next(e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    started = next(e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
    assert started.activity_task_started_event_attributes.attempt == 2
    waited = started.event_time.ToDatetime() - scheduled.event_time.ToDatetime()
    assert waited.total_seconds() >= 45  # the server's retry-after became Temporal's next retry delay


async def test_overloaded_is_retried_before_and_inside_the_stream(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path, api: AnthropicLoopback
) -> None:
    mid_stream = use("submit", CHANGE, 9)
    mid_stream.stream_error = "overloaded_error"  # HTTP 200, then an error event
    api.replies = [Reply.error(529, "overloaded_error"), mid_stream, use("submit", CHANGE, 1)]
    result, _ = await run_coder(time_skipping_env, tmp_path, sample_repo, api)
    assert result.submission == CHANGE and len(api.requests) == 3
    assert all(r.body["stream"] is True for r in api.requests)


async def test_bad_key_fails_at_once_with_a_clear_error(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path, api: AnthropicLoopback
) -> None:
    api.replies = [Reply.error(401, "authentication_error")]
    with pytest.raises(WorkflowFailureError) as failure:
        await run_coder(time_skipping_env, tmp_path, sample_repo, api)
    cause = failure.value.cause
    while cause.__cause__ is not None:
        cause = cause.__cause__
    assert isinstance(cause, ApplicationError) and cause.type == "AuthenticationFailed" and cause.non_retryable
    assert "HTTP 401" in cause.message and "API key" in cause.message
    assert len(api.requests) == 1  # not retried


async def test_most_input_is_read_from_the_prompt_cache(time_skipping_env: WorkflowEnvironment, tmp_path: Path) -> None:
    """The loopback caches by the request's own breakpoints: misplaced ones would read nothing."""
    share, usage = await cached_share(time_skipping_env, 8, tmp_path)
    assert usage.input_tokens == 0  # everything is either written to or read from the cache
    assert share > 0.75


async def test_a_long_conversation_is_compacted_and_stays_valid(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path, api: AnthropicLoopback
) -> None:
    """Past the context limit the oldest turns become a summary; every request still passes the API's
    conversation rules (the loopback answers 400 otherwise) and the brief survives."""
    (sample_repo / "big.txt").write_text("".join(f"row {i}: {'y' * 70}\n" for i in range(60)))  # ~1.2k tokens
    git(sample_repo, "add", "big.txt")
    git(sample_repo, "commit", "-qm", "big")
    api.replies = [use("read_file", {"path": "big.txt", "start_line": 1 + n % 2}, n) for n in range(10)]
    api.replies.append(use("submit", CHANGE, 99))
    result, _ = await run_coder(time_skipping_env, tmp_path, sample_repo, api, FORGEFLOW_CONTEXT_TOKENS="4000")
    assert result.submission == CHANGE and len(api.requests) == 11  # no request was refused
    last = api.requests[-1].body["messages"]
    assert len(json.dumps(last)) // 4 <= 4000 + 1500  # bounded: limit plus the newest exchange
    summary = last[0]["content"][0]["text"]
    assert "compacted" in summary and "Make the change." in summary and "(you called) read_file" in summary
