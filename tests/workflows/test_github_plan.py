"""Plan mode from a GitHub issue: githubkit against the loopback GitHub, the plan posted once as a comment."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from config.settings import Settings
from contracts.codehost import PostCommentInput
from contracts.run import IssueResult, Outcome
from tests.loopback.github_api import GitHubLoopback, Issue
from tests.scripts import planner_run, write_script
from worker import build_workers, github_host

TOKEN = "ghp_loopback_plan"


@pytest.fixture
def github(sample_repo: Path) -> Iterator[GitHubLoopback]:
    with GitHubLoopback("acme", "calc", sample_repo, TOKEN) as gh:
        gh.issues[7] = Issue(title="Add subtract", body="Please add calc.subtract(a, b).")
        gh.issues[7].comments.append({"id": 1, "body": "Keep it tiny.", "user": {"login": "maintainer"}})
        yield gh


def settings_for(tmp_path: Path, github: GitHubLoopback, queue: str) -> Settings:
    return Settings.model_validate(
        {
            "FORGEFLOW_DATA_DIR": str(tmp_path / "data"),
            "FORGEFLOW_TASK_QUEUE": queue,
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_API_URL": github.base_url,
        }
    )


async def test_plan_mode_from_a_github_issue(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, github: GitHubLoopback
) -> None:
    run = planner_run()
    run["turns"][0]["expect"] = ["Please add calc.subtract", "Keep it tiny.", "issue #7"]  # issue and thread reach it
    run["turns"][1]["expect"] = ["calc/__init__.py", "tests/test_calc.py"]  # files read from the cached archive
    script = write_script(tmp_path / "s.json", {"planner": [run]})
    queue = f"gh-{uuid.uuid4().hex[:6]}"
    settings = settings_for(tmp_path, github, queue)
    (worker,) = build_workers(time_skipping_env.client, settings, [queue])
    workflow_id = f"gh-plan-{uuid.uuid4().hex[:6]}"
    async with worker:
        result = await time_skipping_env.client.execute_workflow(
            "IssueWorkflow",
            {"repo": "acme/calc", "issue_number": 7, "mode": "plan", "model_script": script},
            id=workflow_id,
            task_queue=queue,
            result_type=IssueResult,
        )
    assert result.outcome == Outcome.PLANNED
    posted = github.issues[7].comments[1:]
    assert len(posted) == 1 and "## Plan" in posted[0]["body"] and f"forgeflow:{workflow_id}:plan" in posted[0]["body"]
    assert sum("/tarball/" in path for _, path in github.requests) == 1  # one archive download per commit

    # A retried post (a crash after GitHub accepted it) finds the comment instead of posting again.
    host = github_host(settings)
    assert host is not None
    again = PostCommentInput(repo="acme/calc", issue_number=7, body="## Plan again", run_id=workflow_id, step="plan")
    await ActivityEnvironment().run(host.post_comment, again)
    assert len(github.issues[7].comments) == 2


async def test_missing_issue_fails_fast_naming_it(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, github: GitHubLoopback
) -> None:
    queue = f"gh-{uuid.uuid4().hex[:6]}"
    (worker,) = build_workers(time_skipping_env.client, settings_for(tmp_path, github, queue), [queue])
    async with worker:
        with pytest.raises(WorkflowFailureError) as failure:
            await time_skipping_env.client.execute_workflow(
                "IssueWorkflow",
                {"repo": "acme/calc", "issue_number": 99, "mode": "plan", "model_script": "/nonexistent"},
                id=f"gh-missing-{uuid.uuid4().hex[:6]}",
                task_queue=queue,
            )
    cause = failure.value.cause
    while cause is not None and cause.__cause__ is not None:
        cause = cause.__cause__
    assert isinstance(cause, ApplicationError) and cause.non_retryable and cause.type == "GitHubNotFound"
    assert "issue #99 in acme/calc not found" in cause.message
