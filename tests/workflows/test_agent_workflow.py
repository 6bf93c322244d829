"""AgentWorkflow on the time-skipping server: the durable loop's limits, corrections and history size."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from contracts.agents import AgentResult
from starter.workers import build_workers
from testkit.runs import run_agent_on
from testkit.scripts import agent_input, scripted, submit, tool, turn, write_script
from testkit.tools import git

GOOD_CHANGE = {"summary": "done", "commit_message": "Do it"}


async def run_agent(
    env: WorkflowEnvironment,
    tmp_path: Path,
    repo: Path,
    turns: list[dict[str, Any]],
    *,
    max_turns: int = 40,
    overlay: dict[str, str | None] | None = None,
) -> tuple[AgentResult, str]:
    """`overlay`: the workspace's files changed before the run (path → content key)."""
    queue = f"agent-{uuid.uuid4().hex[:8]}"
    settings = Settings.model_validate({"FORGEFLOW_DATA_DIR": str(tmp_path / "data"), "FORGEFLOW_TASK_QUEUE": queue})
    script = write_script(tmp_path / f"{queue}.json", {"coder": [{"turns": turns}]})
    inp = agent_input("coder", repo, scripted(script), max_turns=max_turns)
    if overlay is not None:
        inp = inp.model_copy(update={"workspace": inp.workspace.model_copy(update={"overlay": overlay})})
    wf_id = f"agent-{uuid.uuid4().hex[:8]}"
    (worker,) = build_workers(env.client, settings, [queue])
    return await run_agent_on(worker, inp, wf_id), wf_id


async def test_invalid_submission_goes_back_to_the_model(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    turns = [
        turn(submit(summary="missing the commit message")),
        turn(submit(**GOOD_CHANGE), expect=["Invalid submission", "commit_message"]),
    ]
    result, _ = await run_agent(time_skipping_env, tmp_path, sample_repo, turns)
    assert result.submission == GOOD_CHANGE
    assert result.usage.turns == 2


async def test_tool_errors_are_readable_by_the_model(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    turns = [
        turn(
            tool("write_file", path="../outside.py", content="x"),
            tool("write_file", path=".git/hooks/pre-commit", content="x"),
            tool("run_command", command="true"),  # commands are off in this run (AgentInput.commands)
            tool("str_replace", path="calc/__init__.py", old_str="nope", new_str="x"),
        ),
        turn(
            tool("write_file", path="calc/extra.py", content="X = 1\n"),
            expect=["leaves the repository", "inside .git", "Unknown tool 'run_command'", "matches 0 times"],
        ),
        turn(submit(**GOOD_CHANGE)),
    ]
    result, _ = await run_agent(time_skipping_env, tmp_path, sample_repo, turns)
    assert set(result.workspace.overlay) == {"calc/extra.py"}
    assert not (tmp_path / "outside.py").exists()


async def test_a_tool_that_fails_for_good_is_the_models_to_read(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    """A workspace tool is a local activity; once its retries are spent, the model reads why (the SDK
    raises a local activity's failure bare: execute_local makes it an ActivityError, as an activity's)."""
    missing = "sha256:" + "0" * 64  # a content key the store never had
    turns = [
        turn(tool("read_file", path="calc/lost.py")),
        turn(submit(**GOOD_CHANGE), expect=["read_file failed", missing]),
    ]
    result, _ = await run_agent(time_skipping_env, tmp_path, sample_repo, turns, overlay={"calc/lost.py": missing})
    assert result.submission == GOOD_CHANGE and result.usage.tool_calls == 1


async def test_turn_budget_exceeded_is_a_typed_failure(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    turns = [turn(tool("list_files", glob=f"*{i}*")) for i in range(5)]  # busy, not stuck
    with pytest.raises(WorkflowFailureError) as failure:
        await run_agent(time_skipping_env, tmp_path, sample_repo, turns, max_turns=3)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "AgentTurnBudgetExceeded"
    assert "did not submit a result within its budget of 3 turns" in cause.message


async def test_history_per_turn_stays_bounded(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    """The transcript is referenced by key, so turn 30's input is no bigger than turn 3's."""
    big = "".join(f"line {i}: {'x' * 60}\n" for i in range(120))  # ~8 KB read back every turn
    (sample_repo / "big.txt").write_text(big)
    git(sample_repo, "add", "big.txt")
    git(sample_repo, "commit", "-qm", "big file")
    # Alternate the first line so the agent is busy rather than stuck; each read returns ~8 KB.
    reads = [turn(tool("read_file", path="big.txt", start_line=1 + i % 2)) for i in range(30)]
    turns = [*reads, turn(submit(**GOOD_CHANGE))]
    result, wf_id = await run_agent(time_skipping_env, tmp_path, sample_repo, turns)
    assert result.usage.turns == 31
    history = await time_skipping_env.client.get_workflow_handle(wf_id).fetch_history()
    sizes = [
        e.activity_task_scheduled_event_attributes.input.ByteSize()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "model_turn"
    ]
    assert len(sizes) == 31
    # Each turn carries one ~8 KB tool result; re-sending the transcript would make turn 31 ~30x turn 2.
    assert max(sizes[1:]) < 1.2 * min(sizes[1:])
    assert max(sizes) < 3 * len(big)
    # The reads ran inside their model turns (shape level 2): no marker, activity or workflow task of their own.
    markers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]
    assert not [m for m in markers if m.marker_recorded_event_attributes.marker_name == "core_local_activity"]
    assert not [e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED][31:]
    assert result.usage.tool_calls == 30
    # The whole history, not only the model turns' inputs: under 3 KB a turn although each read is ~8 KB.
    assert sum(e.ByteSize() for e in history.events) / result.usage.turns < 3 * 1024


async def test_a_stuck_agent_is_stopped(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    turns = [turn(tool("read_file", path="calc/__init__.py")) for _ in range(10)]
    with pytest.raises(WorkflowFailureError) as failure:
        await run_agent(time_skipping_env, tmp_path, sample_repo, turns)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "AgentStuck"
    assert "repeated the same read_file call with the same input 3 times" in cause.message
    assert cause.details and cause.details[0]["turns"] == 3  # what it spent travels with the failure


async def test_an_answer_cut_off_at_max_tokens_continues(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    cut = turn(tool("write_file", path="calc/half.py", content="def half("), text="Writing the file")
    cut["stop_reason"] = "max_tokens"  # the write's input is truncated: it must not run
    turns = [cut, turn(submit(**GOOD_CHANGE), expect=["hit the output limit"])]
    result, _ = await run_agent(time_skipping_env, tmp_path, sample_repo, turns)
    assert result.submission == GOOD_CHANGE
    assert result.workspace.overlay == {}  # the truncated write never ran
