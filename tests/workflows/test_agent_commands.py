"""Agents' sandboxed commands inside whole runs, on the time-skipping server with the real sandbox
worker (bubblewrap): what a command changes joins the commit, a selected test run never stands for
the change, and the run's option and the repository's .forgeflow.yml turn commands off.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from contracts.run import IssueResult, Outcome
from starter.workers import build_workers
from testkit.scripts import planner_run, reviewer_run, submit, tester_run, tool, turn, write_script
from testkit.tools import git

SUBTRACT = "def subtract(a, b):\\n    return a - b\\n"
NEW_TEST = "from calc import subtract\\n\\n\\ndef test_subtract():\\n    assert subtract(3, 1) == 2\\n"


async def run(
    env: WorkflowEnvironment, tmp_path: Path, repo: Path, agents: dict[str, Any], **extra: Any
) -> IssueResult:
    queue = f"cmd-{uuid.uuid4().hex[:8]}"
    settings = Settings.model_validate(
        {
            "FORGEFLOW_DATA_DIR": str(tmp_path / "data"),
            "FORGEFLOW_TASK_QUEUE": queue,
            "FORGEFLOW_SANDBOX_WEAK_LIMITS": "1",
        }
    )
    script = write_script(tmp_path / f"{queue}.json", agents)
    main, sandbox = build_workers(env.client, settings, [queue, settings.sandbox_task_queue])
    params = {"repo": str(repo), "spec_content": "Add calc.subtract(a, b).", "model_script": script, **extra}
    async with main, sandbox:
        handle = await env.client.start_workflow(
            "IssueWorkflow", params, id=f"run-{queue}", task_queue=queue, result_type=IssueResult
        )
        result: IssueResult = await handle.result()
    return result


async def test_what_the_coders_command_changes_is_committed_and_the_whole_suite_decides(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    (sample_repo / "OLD.md").write_text("to be removed\n")
    git(sample_repo, "add", "OLD.md")
    git(sample_repo, "commit", "-qm", "a file the change removes")
    add = f"printf '\\n\\n{SUBTRACT}' >> calc/__init__.py && printf '{NEW_TEST}' > tests/test_sub.py"
    command = f"rm notes.txt OLD.md && {add}"
    coder = {
        "turns": [
            turn(tool("write_file", path="notes.txt", content="scratch\n")),
            turn(tool("run_command", command=command)),
            turn(
                tool("run_tests", tests=["tests/test_sub.py"]),
                expect=["The command changed 4 file(s)", "D OLD.md", "D notes.txt (a file you had created)"],
            ),
            turn(
                submit(summary="subtract", commit_message="Add subtract"), expect=["status: passed; total 1, passed 1"]
            ),
        ]
    }
    # The tester runs one test file only: that is no report on the change, so the run runs the suite.
    tester = {"turns": [turn(tool("run_tests", tests=["tests/test_calc.py"])), turn(submit(summary="ok"))]}
    agents = {"planner": [planner_run()], "coder": [coder], "tester": [tester], "reviewer": [reviewer_run()]}
    result = await run(time_skipping_env, tmp_path, sample_repo, agents)
    assert result.outcome == Outcome.APPROVED, result.state.error
    assert result.state.round == 1
    report = result.state.test_results
    assert report is not None and (report.status, report.total, report.passed) == ("passed", 2, 2)
    (branch,) = result.state.branches_created
    files = git(sample_repo, "ls-tree", "-r", "--name-only", branch).split()
    # The committed file the command deleted is gone from the commit; the agent's own file never got in.
    assert sorted(files) == ["calc/__init__.py", "tests/test_calc.py", "tests/test_sub.py"]
    assert git(sample_repo, "show", f"{branch}:calc/__init__.py").endswith("return a - b")


@pytest.mark.parametrize("where", ["run", "repository"])
async def test_commands_turned_off_by_the_run_or_the_repository(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path, where: str
) -> None:
    extra: dict[str, Any] = {}
    if where == "run":
        extra["commands"] = []
    else:
        (sample_repo / ".forgeflow.yml").write_text("commands: [tester]\n")
        git(sample_repo, "add", ".forgeflow.yml")
        git(sample_repo, "commit", "-qm", "only the tester runs commands")
    coder = {
        "turns": [
            turn(tool("run_command", command="echo hi > hi.txt")),
            turn(submit(summary="nothing", commit_message="Nothing"), expect=["Unknown tool 'run_command'"]),
        ]
    }
    agents = {"planner": [planner_run()], "coder": [coder], "tester": [tester_run()], "reviewer": [reviewer_run()]}
    result = await run(time_skipping_env, tmp_path, sample_repo, agents, **extra)
    assert result.outcome == Outcome.APPROVED, result.state.error
    assert result.state.commits == []  # the command never ran, so there was nothing to commit
