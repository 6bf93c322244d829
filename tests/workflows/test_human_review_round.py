"""A person's review of forgeflow's pull request becomes the coder's next round, on the same branch.

Two ways in: a new run that continues the pull request (`pr_number` + `human_review`, what the
webhook starts when the run has ended), and the `human_review` signal to a run still working.
Real workflows and activities on the time-skipping server, the local git host, a scripted model
whose `expect` fails the run unless the coder's context holds the reviewer's words.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from config.settings import Settings
from contracts.github_events import SIGNAL_HUMAN_REVIEW
from contracts.run import HumanReview, HumanReviewComment, IssueResult, Outcome
from contracts.testing import RunTestsInput, TestReport
from starter.workers import build_workers
from testkit.scripts import coder_run, planner_run, reviewer_run, submit, tester_run, tool, turn, write_script
from testkit.tools import git

FIXED = "def add(a, b):\n    return a + b\n\n\ndef subtract(a, b):\n    return a - b\n"
DOCUMENTED = 'def add(a, b):\n    return a + b\n\n\ndef subtract(a, b):\n    """a minus b."""\n    return a - b\n'
ASK = "subtract needs a docstring"
REVIEW = HumanReview(
    reviewer="maintainer",
    state="changes_requested",
    body="Nearly there.",
    comments=[HumanReviewComment(path="calc/__init__.py", line=5, body=ASK)],
)


def answering_coder(content: str, *, expect: list[str]) -> dict[str, Any]:
    """A coder whose first turn requires `expect` in its context, then writes calc/__init__.py."""
    return {
        "turns": [
            turn(tool("read_file", path="calc/__init__.py"), expect=expect),
            turn(tool("write_file", path="calc/__init__.py", content=content)),
            turn(submit(summary="documented subtract", commit_message="Document subtract")),
        ]
    }


class HeldTestRuns:
    """The sandbox's stand-in: passing reports; the first call waits until the test lets it go."""

    def __init__(self) -> None:
        self.called = asyncio.Event()
        self.release = asyncio.Event()
        self.commits: list[str] = []

    @activity.defn(name="run_tests")
    async def run_tests(self, req: RunTestsInput) -> TestReport:
        self.commits.append(req.commit_sha)
        self.called.set()
        await self.release.wait()
        return TestReport(
            commit_sha=req.commit_sha, command=["pytest"], status="passed", total=2, passed=2, exit_code=0
        )


async def _run(env: WorkflowEnvironment, tmp_path: Path, params: dict[str, Any], runs: HeldTestRuns) -> IssueResult:
    queue = f"ff-{uuid.uuid4().hex[:8]}"
    settings = Settings.model_validate({"FORGEFLOW_DATA_DIR": str(tmp_path / "data"), "FORGEFLOW_TASK_QUEUE": queue})
    (main,) = build_workers(env.client, settings, [queue])
    async with main, Worker(env.client, task_queue=settings.sandbox_task_queue, activities=[runs.run_tests]):
        handle = await env.client.start_workflow(
            "IssueWorkflow", params, id=f"run-{uuid.uuid4().hex[:8]}", task_queue=queue, result_type=IssueResult
        )
        result: IssueResult = await handle.result()
    return result


async def _first_run(env: WorkflowEnvironment, repo: Path, tmp_path: Path) -> IssueResult:
    script = write_script(
        tmp_path / "first.json",
        {
            "planner": [planner_run()],
            "coder": [coder_run(FIXED)],
            "tester": [tester_run()],
            "reviewer": [reviewer_run()],
        },
    )
    runs = HeldTestRuns()
    runs.release.set()
    spec = {"repo": str(repo), "spec_content": "# Add subtract\nAdd calc.subtract(a, b).", "model_script": script}
    return await _run(env, tmp_path, spec, runs)


async def test_a_review_of_an_ended_runs_pull_request_is_one_more_commit_on_its_branch(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    first = await _first_run(time_skipping_env, sample_repo, tmp_path)
    (branch,) = first.state.branches_created
    head = git(sample_repo, "rev-parse", branch)
    (sample_repo / ".forgeflow" / "prs").mkdir(parents=True)
    (sample_repo / ".forgeflow" / "prs" / "5").write_text(f"{branch}\n")  # the local host's pull request #5

    script = write_script(
        tmp_path / "second.json",
        {
            "coder": [answering_coder(DOCUMENTED, expect=[ASK, "calc/__init__.py:5", "Nearly there.", "@maintainer"])],
            "tester": [tester_run()],
            "reviewer": [reviewer_run()],
        },
    )
    runs = HeldTestRuns()
    runs.release.set()
    params = {"repo": str(sample_repo), "pr_number": 5, "human_review": REVIEW.model_dump(), "model_script": script}
    result = await _run(time_skipping_env, tmp_path, params, runs)

    st = result.state
    assert result.outcome == Outcome.APPROVED
    (commit,) = st.commits  # exactly one new commit
    assert git(sample_repo, "rev-parse", branch) == commit  # on the same branch
    assert git(sample_repo, "rev-parse", f"{commit}^") == head  # on top of the pull request's head
    assert git(sample_repo, "diff", "--name-only", head, commit) == "calc/__init__.py"  # the file the review named
    assert git(sample_repo, "show", f"{commit}:calc/__init__.py") + "\n" == DOCUMENTED
    assert st.branches_created == [branch] and st.prs_created == [branch]
    assert runs.commits == [commit]  # the tester tested it
    assert not any("planner" in line for line in st.log)  # straight to the coder
    assert st.human_reviews == [REVIEW]


async def test_a_review_of_someone_elses_branch_is_refused(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    git(sample_repo, "branch", "feature/theirs")
    (sample_repo / ".forgeflow" / "prs").mkdir(parents=True)
    (sample_repo / ".forgeflow" / "prs" / "6").write_text("feature/theirs\n")
    script = write_script(tmp_path / "s.json", {})
    params = {"repo": str(sample_repo), "pr_number": 6, "human_review": REVIEW.model_dump(), "model_script": script}
    with pytest.raises(WorkflowFailureError) as failure:
        await _run(time_skipping_env, tmp_path, params, HeldTestRuns())
    assert "not forgeflow's pull request" in str(failure.value.cause)


async def test_a_review_signalled_while_the_run_works_is_the_coders_next_round(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    script = write_script(
        tmp_path / "s.json",
        {
            "planner": [planner_run()],
            "coder": [coder_run(FIXED), answering_coder(DOCUMENTED, expect=[ASK, "calc/__init__.py:5"])],
            "tester": [tester_run(), tester_run()],
            "reviewer": [reviewer_run(), reviewer_run()],
        },
    )
    queue = f"ff-{uuid.uuid4().hex[:8]}"
    settings = Settings.model_validate({"FORGEFLOW_DATA_DIR": str(tmp_path / "data"), "FORGEFLOW_TASK_QUEUE": queue})
    runs = HeldTestRuns()
    (main,) = build_workers(time_skipping_env.client, settings, [queue])
    sandbox = Worker(time_skipping_env.client, task_queue=settings.sandbox_task_queue, activities=[runs.run_tests])
    async with main, sandbox:
        params = {"repo": str(sample_repo), "spec_content": "# Add subtract\nAdd it.", "model_script": script}
        handle = await time_skipping_env.client.start_workflow(
            "IssueWorkflow", params, id=f"run-{uuid.uuid4().hex[:8]}", task_queue=queue, result_type=IssueResult
        )
        await asyncio.wait_for(runs.called.wait(), 60)  # the first round is committed and under test
        await handle.signal(SIGNAL_HUMAN_REVIEW, REVIEW)
        runs.release.set()
        result: IssueResult = await handle.result()
    st = result.state
    assert result.outcome == Outcome.APPROVED
    assert st.round == 2 and st.retry_count == 1  # the review's round used a retry
    assert len(st.commits) == 2 and runs.commits == st.commits
    assert git(sample_repo, "show", f"{st.commits[-1]}:calc/__init__.py") + "\n" == DOCUMENTED
    assert any("review(s) by a person" in line for line in st.log)
