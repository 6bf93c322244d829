"""IssueWorkflow on the time-skipping server: every route of the state machine, gates and timeouts.

Real workflows, real model/tool/code-host activities (scripted replay, real git); only `run_tests`
is a same-named stand-in that returns queued reports, because sandboxing is beside the point here
(tests/activities/test_sandbox.py and the e2e tests run the real one).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker, WorkflowRunner

from config.settings import Settings
from contracts.run import GateDecision, IssueResult, OrchestrationState, Outcome
from contracts.testing import RunTestsInput, TestFailure, TestReport
from starter.follow import result_of_failure
from starter.workers import SHARED_WORKFLOW_MODULES, STRICT_SANDBOX, build_workers
from testkit.scripts import coder_run, planner_run, reviewer_run, submit, tester_run, tool, turn, write_script
from testkit.tools import git

FIXED = "def add(a, b):\n    return a + b\n\n\ndef subtract(a, b):\n    return a - b\n"
BROKEN = "def add(a, b):\n    return a + b\n\n\ndef subtract(a, b):\n    return a + b\n"
FAILING_TEST = "tests/test_calc.py::test_subtract"


class QueuedTestRuns:
    """Stands in for the sandbox: each call returns the next queued outcome."""

    def __init__(self, outcomes: list[bool]) -> None:
        self.outcomes = list(outcomes)
        self.commits: list[str] = []
        self.overlays: list[dict[str, str | None]] = []
        self.commands: list[tuple[list[str] | None, list[str] | None]] = []

    @activity.defn(name="run_tests")
    async def run_tests(self, req: RunTestsInput) -> TestReport:
        self.commits.append(req.commit_sha)
        self.overlays.append(req.overlay)
        self.commands.append((req.install_command, req.test_command))
        ok = self.outcomes.pop(0)
        failures = [] if ok else [TestFailure(name=FAILING_TEST, message="assert 6 == -2")]
        return TestReport(
            commit_sha=req.commit_sha,
            command=["pytest"],
            status="passed" if ok else "failed",
            total=2,
            passed=2 if ok else 1,
            failed=0 if ok else 1,
            failures=failures,
            exit_code=0 if ok else 1,
        )


@asynccontextmanager
async def pipeline(
    env: WorkflowEnvironment,
    tmp_path: Path,
    test_outcomes: list[bool],
    runner: WorkflowRunner = SHARED_WORKFLOW_MODULES,
) -> AsyncIterator[tuple[str, QueuedTestRuns]]:
    queue = f"ff-{uuid.uuid4().hex[:8]}"
    settings = Settings.model_validate({"FORGEFLOW_DATA_DIR": str(tmp_path / "data"), "FORGEFLOW_TASK_QUEUE": queue})
    runs = QueuedTestRuns(test_outcomes)
    (main,) = build_workers(env.client, settings, [queue], workflow_runner=runner)
    sandbox = Worker(env.client, task_queue=settings.sandbox_task_queue, activities=[runs.run_tests])
    async with main, sandbox:
        yield queue, runs


async def start(
    env: WorkflowEnvironment, queue: str, repo: Path, script: str, **extra: Any
) -> WorkflowHandle[Any, Any]:
    params = {
        "repo": str(repo),
        "spec_content": "# Add subtract\nAdd calc.subtract(a, b).",
        "model_script": script,
        **extra,
    }
    return await env.client.start_workflow(
        "IssueWorkflow", params, id=f"run-{uuid.uuid4().hex[:8]}", task_queue=queue, result_type=IssueResult
    )


async def wait_for_gate(handle: WorkflowHandle[Any, Any], kind: str) -> OrchestrationState:
    for _ in range(200):
        state: OrchestrationState = await handle.query("state", result_type=OrchestrationState)
        if state.pending_gate is not None and state.pending_gate.kind == kind:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {kind} gate opened")


async def failed_run(handle: WorkflowHandle[Any, Any]) -> tuple[ApplicationError, IssueResult]:
    """A run whose outcome is a failure ends as a failed execution carrying its final result."""
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
    cause, result = failure.value.cause, result_of_failure(failure.value)
    assert isinstance(cause, ApplicationError) and cause.non_retryable and result is not None
    return cause, result


async def test_plan_mode_ends_after_planning(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    script = write_script(tmp_path / "s.json", {"planner": [planner_run()]})
    async with pipeline(time_skipping_env, tmp_path, []) as (queue, runs):
        handle = await start(time_skipping_env, queue, sample_repo, script, mode="plan")
        result: IssueResult = await handle.result()
    assert result.outcome == Outcome.PLANNED
    assert result.state.plan is not None and result.state.tasks[0].id == "t1"
    assert result.state.branches_created == [] and runs.commits == []
    assert result.state.usage.by_agent.keys() == {"planner"}


async def test_autonomous_happy_path(time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.json",
        {
            "planner": [planner_run()],
            "coder": [coder_run(FIXED)],
            "tester": [tester_run()],
            "reviewer": [reviewer_run()],
        },
    )
    head_before = git(sample_repo, "rev-parse", "HEAD")
    async with pipeline(time_skipping_env, tmp_path, [True]) as (queue, runs):
        handle = await start(time_skipping_env, queue, sample_repo, script)
        result: IssueResult = await handle.result()
    st = result.state
    assert result.outcome == Outcome.APPROVED
    assert st.retry_count == 0 and st.round == 1
    (branch,) = st.branches_created
    assert branch.startswith("forgeflow/") and st.prs_created == [branch]
    assert git(sample_repo, "rev-parse", branch) == st.commits[-1] == runs.commits[0]
    assert git(sample_repo, "show", f"{branch}:calc/__init__.py") + "\n" == FIXED
    assert git(sample_repo, "rev-parse", "HEAD") == head_before  # the user's branch is untouched
    assert st.files_changed == ["calc/__init__.py"]
    assert st.review_verdict == "approve" and st.approval_status == "approved"
    assert st.scripted_replay
    records = Path(git(sample_repo, "rev-parse", "--absolute-git-dir")) / "forgeflow"
    assert "[scripted replay" in next((records / "reviews").rglob("latest.md")).read_text()
    assert "[scripted replay" in next((records / "prs").glob("*.md")).read_text()


async def test_test_failure_retries_with_failures_as_context(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    script = write_script(
        tmp_path / "s.json",
        {
            "planner": [planner_run()],
            # The second round's recording only plays if the failing test's name reached the coder.
            "coder": [coder_run(BROKEN), coder_run(FIXED, expect=[FAILING_TEST, "assert 6 == -2"])],
            "tester": [tester_run(), tester_run()],
            "reviewer": [reviewer_run()],
        },
    )
    async with pipeline(time_skipping_env, tmp_path, [False, True]) as (queue, runs):
        handle = await start(time_skipping_env, queue, sample_repo, script)
        result: IssueResult = await handle.result()
    st = result.state
    assert result.outcome == Outcome.APPROVED
    assert st.retry_count == 1 and st.round == 2 and len(st.commits) == 2
    assert runs.commits == st.commits  # each round's commit was tested
    assert git(sample_repo, "rev-parse", f"{st.commits[1]}^") == st.commits[0]  # round 2 builds on round 1
    assert st.test_results is not None and st.test_results.ok


async def test_the_workflows_keep_to_temporals_strict_sandbox(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    """Workers share the workflow modules between runs (starter/workers.py), which takes the sandbox's
    checks off the modules' own calls; here every role, a failed round and the approval gate run
    with each run importing them into the full sandbox, where a clock, file or network call fails."""
    script = write_script(
        tmp_path / "s.json",
        {
            "planner": [planner_run()],
            "coder": [coder_run(BROKEN), coder_run(FIXED, expect=[FAILING_TEST])],
            "tester": [tester_run(), tester_run()],
            "reviewer": [reviewer_run()],
        },
    )
    async with pipeline(time_skipping_env, tmp_path, [False, True], STRICT_SANDBOX) as (queue, _):
        handle = await start(time_skipping_env, queue, sample_repo, script, require_plan_approval=True)
        await wait_for_gate(handle, "plan_approval")
        await handle.signal("approve")
        result: IssueResult = await handle.result()
    assert result.outcome == Outcome.APPROVED and result.state.round == 2


async def test_the_runs_install_and_test_commands_reach_the_sandbox(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    script = write_script(
        tmp_path / "s.json",
        {"planner": [planner_run()], "coder": [coder_run(FIXED)], "tester": [tester_run()],
         "reviewer": [reviewer_run()]},
    )  # fmt: skip
    commands = {"install_command": ["pip", "install", "-e", ".[test]"], "test_command": ["pytest", "-x"]}
    async with pipeline(time_skipping_env, tmp_path, [True]) as (queue, runs):
        handle = await start(time_skipping_env, queue, sample_repo, script, **commands)
        result: IssueResult = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert runs.commands == [(["pip", "install", "-e", ".[test]"], ["pytest", "-x"])]


async def test_changes_requested_retries_with_comments(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    comment = {
        "path": "calc/__init__.py",
        "line": 5,
        "severity": "major",
        "category": "tests",
        "body": "subtract has no test",
    }
    script = write_script(
        tmp_path / "s.json",
        {
            "planner": [planner_run()],
            "coder": [coder_run(FIXED), coder_run(FIXED + "\n", expect=["subtract has no test"])],
            "tester": [tester_run(), tester_run()],
            "reviewer": [reviewer_run("request_changes", [comment]), reviewer_run()],
        },
    )
    async with pipeline(time_skipping_env, tmp_path, [True, True]) as (queue, _):
        handle = await start(time_skipping_env, queue, sample_repo, script)
        result: IssueResult = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert result.state.retry_count == 1 and result.state.round == 2


async def test_changes_requested_without_retries_ends(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    comment = {"path": "calc/__init__.py", "body": "needs docs"}
    script = write_script(
        tmp_path / "s.json",
        {
            "planner": [planner_run()],
            "coder": [coder_run(FIXED)],
            "tester": [tester_run()],
            "reviewer": [reviewer_run("request_changes", [comment])],
        },
    )
    async with pipeline(time_skipping_env, tmp_path, [True]) as (queue, _):
        handle = await start(time_skipping_env, queue, sample_repo, script, max_retries=0)
        result: IssueResult = await handle.result()
    assert result.outcome == Outcome.CHANGES_REQUESTED
    assert result.state.review_comments[0].body == "needs docs"


def _exhausting_script(tmp_path: Path, *, extra_round: bool) -> str:
    coders = [coder_run(BROKEN), coder_run(BROKEN)]
    testers = [tester_run(), tester_run()]
    if extra_round:
        coders.append(coder_run(FIXED, expect=["use a minus sign"]))
        testers.append(tester_run())
    return write_script(
        tmp_path / "s.json",
        {"planner": [planner_run()], "coder": coders, "tester": testers, "reviewer": [reviewer_run()]},
    )


async def test_budget_exhausted_escalates_and_feedback_gives_one_more_round(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    script = _exhausting_script(tmp_path, extra_round=True)
    async with pipeline(time_skipping_env, tmp_path, [False, False, True]) as (queue, _):
        handle = await start(time_skipping_env, queue, sample_repo, script, max_retries=1)
        state = await wait_for_gate(handle, "escalation")
        assert state.retry_count == 1 and state.pending_gate is not None
        assert state.pending_gate.allowed == ["feedback", "reject"]
        # The update's validator keeps invalid decisions out of history.
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update("decide", GateDecision(decision="approve"))
        assert "accepts feedback, reject" in str(refused.value.cause)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update("decide", GateDecision(decision="feedback"))
        assert "needs a comment" in str(refused.value.cause)
        await handle.execute_update(
            "decide", GateDecision(decision="feedback", comment="use a minus sign", by="maintainer")
        )
        result: IssueResult = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert result.state.round == 3 and result.state.human_feedback == ["use a minus sign"]
    history = await handle.fetch_history()
    updates = [e for e in history.events if e.HasField("workflow_execution_update_accepted_event_attributes")]
    assert len(updates) == 1  # the two rejected decisions never entered history


async def test_reject_at_escalation_ends(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    script = _exhausting_script(tmp_path, extra_round=False)
    async with pipeline(time_skipping_env, tmp_path, [False, False]) as (queue, _):
        handle = await start(time_skipping_env, queue, sample_repo, script, max_retries=1)
        await wait_for_gate(handle, "escalation")
        await handle.signal("approve")  # not a decision the escalation gate takes: recorded and ignored
        await handle.signal("reject", GateDecision(comment="not worth it"))
        result: IssueResult = await handle.result()
    assert result.outcome == Outcome.REJECTED
    assert any(
        "ignored approve signal: the escalation gate accepts feedback, reject" in line for line in result.state.log
    )
    assert result.state.approval_status == "rejected" and result.state.round == 2


async def test_plan_gate_times_out_cleanly(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    script = write_script(tmp_path / "s.json", {"planner": [planner_run()]})
    async with pipeline(time_skipping_env, tmp_path, []) as (queue, _):
        handle = await start(
            time_skipping_env,
            queue,
            sample_repo,
            script,
            require_plan_approval=True,
            gate_timeout_seconds=3 * 24 * 3600,
        )
        error, result = await failed_run(handle)  # the server skips the three days
    assert error.type == "GateTimedOut" and result.outcome == Outcome.GATE_TIMED_OUT
    assert result.state.error is not None and "plan_approval gate timed out after 259200 s" in result.state.error
    assert result.state.pending_gate is None and result.state.branches_created == []


async def test_plan_gate_approved_by_signal(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    script = write_script(
        tmp_path / "s.json",
        {
            "planner": [planner_run()],
            "coder": [coder_run(FIXED, expect=["keep it small"])],
            "tester": [tester_run()],
            "reviewer": [reviewer_run()],
        },
    )
    async with pipeline(time_skipping_env, tmp_path, [True]) as (queue, _):
        handle = await start(time_skipping_env, queue, sample_repo, script, require_plan_approval=True)
        await wait_for_gate(handle, "plan_approval")
        await handle.signal("feedback", GateDecision(comment="keep it small"))
        result: IssueResult = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert result.state.approval_status == "approved" and result.state.human_feedback == ["keep it small"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"repo": "/tmp/x", "spec_content": "s", "mode": "bogus"}, "mode"),
        ({"repo": "/tmp/x"}, "no task"),
        ({"repo": "not a repo", "spec_content": "s"}, "repo"),
        ({"repo": "/tmp/x", "spec_content": "s", "max_retries": -1}, "max_retries"),
        ({"repo": "/tmp/x", "spec_content": "s", "surprise": 1}, "surprise"),
    ],
)
async def test_invalid_input_fails_fast(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, params: dict[str, Any], field: str
) -> None:
    async with pipeline(time_skipping_env, tmp_path, []) as (queue, _):
        handle = await time_skipping_env.client.start_workflow(
            "IssueWorkflow", params, id=f"bad-{uuid.uuid4().hex[:8]}", task_queue=queue
        )
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.non_retryable and cause.type == "InvalidInput"
    assert field in cause.message


async def test_misconfiguration_ends_the_run_with_the_reason(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    """No model provider on the workers: a human can't fix that at a gate, so the run ends and says why."""
    async with pipeline(time_skipping_env, tmp_path, []) as (queue, _):
        handle = await time_skipping_env.client.start_workflow(
            "IssueWorkflow",
            {"repo": str(sample_repo), "spec_content": "Add subtract"},
            id=f"run-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
            result_type=IssueResult,
        )
        error, result = await failed_run(handle)
    assert error.type == "RunFailed" and result.outcome == Outcome.FAILED
    assert "'anthropic' is not configured" in error.message  # what the Temporal UI shows as the failure
    assert result.state.error is not None
    assert "the planner step failed" in result.state.error and "'anthropic' is not configured" in result.state.error
    assert result.state.pending_gate is None


async def test_agent_failure_escalates_and_feedback_retries_the_step(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    """The coder runs out of turns; a human's feedback gives it another go."""
    looping = {"turns": [turn(tool("list_files", glob=f"*{i}")) for i in range(3)]}
    script = write_script(
        tmp_path / "s.json",
        {"planner": [planner_run()], "coder": [looping, coder_run(FIXED, expect=["just edit calc"])],
         "tester": [tester_run()], "reviewer": [reviewer_run()]},
    )  # fmt: skip
    async with pipeline(time_skipping_env, tmp_path, [True]) as (queue, _):
        handle = await start(time_skipping_env, queue, sample_repo, script, budgets={"max_turns_per_agent": 3})
        state = await wait_for_gate(handle, "escalation")
        assert state.error is not None and "did not submit a result within its budget of 3 turns" in state.error
        await handle.execute_update("decide", GateDecision(decision="feedback", comment="just edit calc"))
        result: IssueResult = await handle.result()
    assert result.outcome == Outcome.APPROVED and result.state.error is None


async def test_spent_budget_stops_at_the_escalation_gate(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    """The planner's 240 tokens pass a 200-token budget: the coder never starts until a human says so."""
    script = write_script(tmp_path / "s.json", {"planner": [planner_run()]})
    async with pipeline(time_skipping_env, tmp_path, []) as (queue, _):
        handle = await start(time_skipping_env, queue, sample_repo, script, budgets={"max_tokens": 200})
        state = await wait_for_gate(handle, "escalation")
        assert state.pending_gate is not None and "token budget spent: 240 of 200 tokens" in state.pending_gate.reason
        assert state.round == 0 and set(state.usage.by_agent) == {"planner"}
        await handle.execute_update("decide", GateDecision(decision="reject", comment="too expensive"))
        result: IssueResult = await handle.result()
    assert result.outcome == Outcome.REJECTED and result.state.branches_created == []


async def test_budget_is_checked_between_turns_and_failed_spend_is_counted(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    """Planner 240 tokens of 300; the coder's first turn spends 120 more, so its second never starts."""
    script = write_script(tmp_path / "s.json", {"planner": [planner_run()], "coder": [coder_run(FIXED)]})
    async with pipeline(time_skipping_env, tmp_path, []) as (queue, _):
        handle = await start(time_skipping_env, queue, sample_repo, script, budgets={"max_tokens": 300})
        state = await wait_for_gate(handle, "escalation")
        assert (
            state.error is not None and "token budget spent: 120 tokens in this coder run, 60 were left" in state.error
        )
        assert state.usage.by_agent["coder"].turns == 1 and state.usage.total_tokens == 360
        await handle.signal("reject")
        result: IssueResult = await handle.result()
    assert result.outcome == Outcome.REJECTED and result.state.commits == []


async def test_tester_writes_tests_that_join_the_branch(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    new_test = "from calc import subtract\n\n\ndef test_subtract():\n    assert subtract(3, 1) == 2\n"
    tester = {
        "turns": [
            turn(tool("write_file", path="calc/__init__.py", content="sabotage")),
            turn(
                tool("write_file", path="tests/test_subtract.py", content=new_test),
                expect=["may only write test files"],
            ),
            turn(tool("run_tests")),
            turn(submit(summary="added a test for subtract")),
        ]
    }
    script = write_script(
        tmp_path / "s.json",
        {"planner": [planner_run()], "coder": [coder_run(FIXED)], "tester": [tester], "reviewer": [reviewer_run()]},
    )
    async with pipeline(time_skipping_env, tmp_path, [True]) as (queue, runs):
        handle = await start(time_skipping_env, queue, sample_repo, script)
        result: IssueResult = await handle.result()
    st = result.state
    assert result.outcome == Outcome.APPROVED and len(st.commits) == 2
    assert list(runs.overlays[0]) == ["tests/test_subtract.py"]  # the run saw the tester's file
    branch = st.branches_created[0]
    assert git(sample_repo, "show", f"{branch}:tests/test_subtract.py") + "\n" == new_test
    assert git(sample_repo, "log", "-1", "--format=%s", branch) == "Add tests for the change"
    assert git(sample_repo, "show", f"{branch}:calc/__init__.py") + "\n" == FIXED  # the sabotage was refused
    assert st.test_results is not None and st.test_results.commit_sha == st.commits[-1]


def _ci_change_script(tmp_path: Path) -> str:
    coder = {
        "turns": [
            turn(tool("write_file", path="calc/__init__.py", content=FIXED)),
            turn(tool("write_file", path=".github/workflows/ci.yml", content="on: push\n")),
            turn(submit(summary="subtract and CI", commit_message="Add subtract and CI")),
        ]
    }
    return write_script(
        tmp_path / "s.json",
        {"planner": [planner_run()], "coder": [coder], "tester": [tester_run()], "reviewer": [reviewer_run()]},
    )


@pytest.mark.parametrize("decision", ["approve", "reject"])
async def test_protected_paths_wait_for_approval_before_commit(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path, decision: str
) -> None:
    async with pipeline(time_skipping_env, tmp_path, [True]) as (queue, _):
        handle = await start(time_skipping_env, queue, sample_repo, _ci_change_script(tmp_path))
        state = await wait_for_gate(handle, "protected_paths")
        assert state.stage == "awaiting_change_approval" and state.commits == []  # nothing landed yet
        assert state.pending_gate is not None and ".github/workflows/ci.yml" in state.pending_gate.reason
        await handle.execute_update("decide", GateDecision(decision=decision, by="maintainer"))  # type: ignore[arg-type]
        result: IssueResult = await handle.result()
    branch = result.state.branches_created[0]
    files = git(sample_repo, "ls-tree", "-r", "--name-only", branch).split()
    assert "calc/__init__.py" in files and result.outcome == Outcome.APPROVED
    assert (".github/workflows/ci.yml" in files) is (decision == "approve")
    if decision == "reject":
        assert any("Do not change .github/workflows/ci.yml" in f for f in result.state.human_feedback)


def _link_change_script(tmp_path: Path) -> str:
    coder = {
        "turns": [
            turn(tool("write_file", path="calc/__init__.py", content=FIXED)),
            turn(
                tool("write_file", path="docs/link.md", content="now a regular file\n"),
                tool("write_file", path="infra/main.tf", content="x\n"),
            ),
            turn(
                submit(summary="subtract", commit_message="Add subtract"),
                expect=["replaces the link with a regular file"],
            ),
        ]
    }
    return write_script(
        tmp_path / "s.json",
        {"planner": [planner_run()], "coder": [coder], "tester": [tester_run()], "reviewer": [reviewer_run()]},
    )


@pytest.mark.parametrize("decision", ["approve", "reject"])
async def test_a_change_to_a_committed_link_and_the_repositorys_own_patterns_wait_for_approval(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path, decision: str
) -> None:
    """The repository's .forgeflow.yml adds `infra/*`; the coder also replaces a committed link, which
    only the code host can see: each is its own question at the protected-paths gate."""
    (sample_repo / "docs").mkdir()
    (sample_repo / "docs" / "link.md").symlink_to("../README.md")
    (sample_repo / ".forgeflow.yml").write_text("protected_paths: ['infra/*']\n")
    git(sample_repo, "add", "-A")
    git(sample_repo, "commit", "-qm", "a link and settings")
    async with pipeline(time_skipping_env, tmp_path, [True]) as (queue, _):
        handle = await start(time_skipping_env, queue, sample_repo, _link_change_script(tmp_path))
        state = await wait_for_gate(handle, "protected_paths")
        assert state.pending_gate is not None and "infra/main.tf" in state.pending_gate.reason
        assert "docs/link.md" not in state.pending_gate.reason and state.commits == []
        await handle.execute_update("decide", GateDecision(decision="approve", by="maintainer"))  # type: ignore[arg-type]
        for _ in range(200):  # the same gate kind opens again, now about the link
            state = await wait_for_gate(handle, "protected_paths")
            if state.pending_gate is not None and "symbolic links" in state.pending_gate.reason:
                break
        assert state.pending_gate is not None and "docs/link.md" in state.pending_gate.reason
        assert state.commits == []  # nothing landed while a human is asked
        await handle.execute_update("decide", GateDecision(decision=decision, by="maintainer"))  # type: ignore[arg-type]
        result: IssueResult = await handle.result()
    assert result.outcome == Outcome.APPROVED
    branch = result.state.branches_created[0]
    entry = git(sample_repo, "ls-tree", branch, "docs/link.md").split()
    if decision == "approve":
        assert entry[0] == "100644" and git(sample_repo, "show", f"{branch}:docs/link.md") == "now a regular file"
    else:
        assert entry[0] == "120000" and git(sample_repo, "show", f"{branch}:docs/link.md") == "../README.md"
        assert any("Do not change docs/link.md" in f for f in result.state.human_feedback)
    assert git(sample_repo, "show", f"{branch}:infra/main.tf") == "x"


async def test_no_bubblewrap_escalates_and_the_run_goes_on_once_it_is_installed(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    """The real sandbox activity on a worker whose bwrap is missing: the tester refuses to run the
    tests unsandboxed, a human is asked, and after bubblewrap appears the same step runs for real."""
    bwrap = tmp_path / "bin" / "bwrap"  # where this worker's operator will install it
    queue = f"ff-{uuid.uuid4().hex[:8]}"
    settings = Settings.model_validate(
        {
            "FORGEFLOW_DATA_DIR": str(tmp_path / "data"),
            "FORGEFLOW_TASK_QUEUE": queue,
            "FORGEFLOW_SANDBOX_BWRAP": str(bwrap),
        }
    )
    script = write_script(
        tmp_path / "s.json",
        {"planner": [planner_run()], "coder": [coder_run(FIXED)], "tester": [tester_run(), tester_run()],
         "reviewer": [reviewer_run()]},
    )  # fmt: skip
    async with contextlib.AsyncExitStack() as stack:
        for worker in build_workers(time_skipping_env.client, settings, [queue, settings.sandbox_task_queue]):
            await stack.enter_async_context(worker)
        handle = await start(time_skipping_env, queue, sample_repo, script)
        state = await wait_for_gate(handle, "escalation")
        assert state.error is not None and "the tester step failed" in state.error
        assert f"bubblewrap ({bwrap}) is not installed" in state.error
        assert state.test_results is None  # nothing ran unsandboxed

        bwrap.parent.mkdir()
        bwrap.symlink_to(shutil.which("bwrap") or "/usr/bin/bwrap")
        await handle.execute_update("decide", GateDecision(decision="feedback", comment="bubblewrap installed"))
        result: IssueResult = await handle.result()
    assert result.outcome == Outcome.APPROVED
    report = result.state.test_results
    assert report is not None and report.status == "passed" and report.passed == 1  # the real suite, sandboxed
    assert report.limits_enforced_by in ("cgroup", "rlimit")
