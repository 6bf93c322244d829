"""A whole run with every agent on Claude — the real `anthropic` client against the loopback API —
and the real sandbox and git: plan, a failing commit, a fix, passing tests and an approving review."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from contracts.run import IssueResult, Outcome
from starter.sample import SCRIPT, SPEC, create_sample_repo
from starter.workers import build_workers
from testkit.loopback.anthropic_api import AnthropicLoopback, Reply
from testkit.tools import git

ORDER = [("planner", 0), ("coder", 0), ("tester", 0), ("coder", 1), ("tester", 1), ("reviewer", 0)]


def recorded_replies() -> list[Reply]:
    """The demo's recorded conversation, served by the loopback in the order the agents run."""
    agents = json.loads(SCRIPT.read_text())["agents"]
    return [
        Reply(content=t["content"], stop_reason=t["stop_reason"], usage=t["usage"])
        for role, run in ORDER
        for t in agents[role][run]["turns"]
    ]


def claude_settings(tmp_path: Path, queue: str, api: AnthropicLoopback, key: str = "sk-ant-loopback") -> Settings:
    """A worker whose Claude is the loopback API."""
    return Settings.model_validate(
        {
            "FORGEFLOW_DATA_DIR": str(tmp_path / "data"),
            "FORGEFLOW_TASK_QUEUE": queue,
            "ANTHROPIC_API_KEY": key,
            "ANTHROPIC_BASE_URL": api.base_url,
        }
    )


async def test_full_run_on_claude(time_skipping_env: WorkflowEnvironment, tmp_path: Path) -> None:
    repo = create_sample_repo(tmp_path / "textkit")
    queue = f"claude-run-{uuid.uuid4().hex[:6]}"
    with AnthropicLoopback() as api:
        api.replies = recorded_replies()
        settings = claude_settings(tmp_path, queue, api)
        workers = build_workers(time_skipping_env.client, settings)
        async with workers[0], workers[1]:
            result = await time_skipping_env.client.execute_workflow(
                "IssueWorkflow",
                {"repo": str(repo), "spec_content": SPEC.read_text()},
                id=f"claude-run-{uuid.uuid4().hex[:6]}",
                task_queue=queue,
                result_type=IssueResult,
            )
    st = result.state
    assert result.outcome == Outcome.APPROVED and not st.scripted_replay
    assert st.plan is not None and st.round == 2 and len(st.commits) == 2
    assert st.test_results is not None and (st.test_results.passed, st.test_results.failed) == (5, 0)
    assert git(repo, "rev-list", "--count", f"main..{st.branches_created[0]}") == "2"
    assert len(api.requests) == len(recorded_replies()) == 19  # one request per recorded turn, none repeated
    assert {r.body["model"] for r in api.requests} == {"claude-sonnet-4-6"}
    # Cost is computed from the recorded usage with the default price table.
    assert st.usage.total_cost_usd > 0 and set(st.usage.by_agent) == {"planner", "coder", "tester", "reviewer"}
    # ... and broken down by round: planning, the failing round, the fixing round (with the review).
    rounds = st.usage.by_round
    assert {r: set(agents) for r, agents in rounds.items()} == {
        0: {"planner"}, 1: {"coder", "tester"}, 2: {"coder", "tester", "reviewer"},
    }  # fmt: skip
    assert sum(st.usage.round_cost(r) for r in rounds) == pytest.approx(st.usage.total_cost_usd)


async def test_each_agent_can_have_its_own_model(time_skipping_env: WorkflowEnvironment, tmp_path: Path) -> None:
    repo = create_sample_repo(tmp_path / "textkit")
    queue = f"claude-models-{uuid.uuid4().hex[:6]}"
    planner_turns = json.loads(SCRIPT.read_text())["agents"]["planner"][0]["turns"]
    with AnthropicLoopback() as api:
        api.replies = [Reply(content=t["content"], usage=t["usage"]) for t in planner_turns]
        settings = claude_settings(tmp_path, queue, api)
        (worker,) = build_workers(time_skipping_env.client, settings, [queue])
        async with worker:
            result = await time_skipping_env.client.execute_workflow(
                "IssueWorkflow",
                {
                    "repo": str(repo),
                    "spec_content": SPEC.read_text(),
                    "mode": "plan",
                    "models": {"planner": "claude-opus-4-7"},
                },
                id=f"claude-models-{uuid.uuid4().hex[:6]}",
                task_queue=queue,
                result_type=IssueResult,
            )
    assert result.outcome == Outcome.PLANNED
    assert {r.body["model"] for r in api.requests} == {"claude-opus-4-7"}


def _use(n: int, name: str, **tool_input: object) -> dict[str, object]:
    return {"type": "tool_use", "id": f"toolu_r{n}", "name": name, "input": tool_input}


async def test_a_turns_reads_reach_the_model_but_not_history(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """From shape level 3 a turn that only reads puts the results in its transcript: the model reads them
    in the user message after its call (with what the loop adds, such as a rejected submission, in the
    same message), and the run's history holds none of them."""
    repo = create_sample_repo(tmp_path / "textkit")
    secret = "marker-" + uuid.uuid4().hex  # in the file only: wherever it is found, a read put it there
    (repo / "NOTES.md").write_text(f"Notes for the planner: {secret}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "notes")
    plan = {"summary": "s", "tasks": [{"id": "t1", "title": "t", "files": ["NOTES.md"]}], "risks": [],
            "test_strategy": "t"}  # fmt: skip
    queue = f"claude-reads-{uuid.uuid4().hex[:6]}"
    with AnthropicLoopback() as api:
        api.replies = [
            Reply(content=[_use(1, "list_files"), _use(2, "read_file", path="NOTES.md")]),
            Reply(content=[_use(3, "search", pattern="Notes for"), _use(4, "submit", tasks="not a list")]),
            Reply(content=[_use(5, "submit", **plan)]),
        ]
        settings = claude_settings(tmp_path, queue, api)
        (worker,) = build_workers(time_skipping_env.client, settings, [queue])
        async with worker:
            run_id = f"claude-reads-{uuid.uuid4().hex[:6]}"
            result = await time_skipping_env.client.execute_workflow(
                "IssueWorkflow",
                {"repo": str(repo), "spec_content": SPEC.read_text(), "mode": "plan"},
                id=run_id,
                task_queue=queue,
                result_type=IssueResult,
            )
            history = await time_skipping_env.client.get_workflow_handle(run_id).fetch_history()
    assert result.outcome == Outcome.PLANNED
    assert result.state.usage.by_agent["planner"].tool_calls == 3

    second, third = (r.body["messages"] for r in api.requests[1:])
    assert [m["role"] for m in third] == ["user", "assistant", "user", "assistant", "user"]  # still taking turns
    after_reads = second[-1]["content"]
    assert [b["tool_use_id"] for b in after_reads] == ["toolu_r1", "toolu_r2"]
    assert "NOTES.md" in after_reads[0]["content"] and secret in after_reads[1]["content"]
    searched, rejected = third[-1]["content"]  # the turn's read and the loop's answer to its submit: one message
    assert searched["tool_use_id"] == "toolu_r3" and secret in searched["content"]
    assert rejected["tool_use_id"] == "toolu_r4" and rejected["is_error"]

    recorded = b"".join(event.SerializeToString() for event in history.events)
    assert secret.encode() not in recorded  # neither as a turn's result nor in the next turn's input
