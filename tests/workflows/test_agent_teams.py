"""A repository shapes its agents in `.forgeflow.yml`: guidance and a narrower tool set for the reviewer,
and an extra security reviewer that runs beside it. Real workflows on the time-skipping server, the
local git host, and Claude through the real `anthropic` client against the loopback Messages API, so
what reaches the model is read on the wire. Only `run_tests` is a stand-in (passing reports).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from config.settings import Settings
from contracts.run import IssueResult, Outcome
from contracts.testing import RunTestsInput, TestReport
from starter.workers import build_workers
from testkit.loopback.anthropic_api import AnthropicLoopback, Reply
from testkit.tools import git

GUIDANCE = "Check that every public function has a docstring."
SECURITY = "Look for injection and unsafe file handling."
SETTINGS = f"""
agents:
  reviewer:
    instructions: "{GUIDANCE}"
    tools: [read_file, view_diff, write_file]
reviewers:
  - name: security
    instructions: "{SECURITY}"
"""
FIXED = "def add(a, b):\n    return a + b\n\n\ndef subtract(a, b):\n    return a - b\n"
CHECKED = FIXED.replace(
    "    return a - b", "    if not isinstance(a, int):\n        raise TypeError(a)\n    return a - b"
)
WORRY = "subtract trusts its input"


class Team:
    """The loopback model: each agent answers by what its request says (its prompt and its messages)."""

    def __init__(self) -> None:
        self.turns: Counter[str] = Counter()
        self.requests: dict[str, list[dict[str, Any]]] = {}

    def agent(self, body: dict[str, Any]) -> str:
        system = json.dumps(body.get("system"))
        if SECURITY in system:
            return "security"
        return next(role for role in ("planner", "coder", "tester", "reviewer") if f"You are the {role}" in system)

    def __call__(self, body: dict[str, Any]) -> Reply:
        agent = self.agent(body)
        self.requests.setdefault(agent, []).append(body)
        rounds = sum(1 for b in self.requests[agent] if not _answered(b))  # briefs seen so far
        return Reply(content=[self.step(agent, _answered(body), rounds)])

    def step(self, agent: str, answered: bool, rounds: int) -> dict[str, Any]:
        if agent == "planner":
            plan = {
                "summary": "Add subtract",
                "tasks": [{"id": "t1", "title": "subtract", "files": ["calc/__init__.py"]}],
            }
            return _use("submit", plan) if answered else _use("list_files", {})
        if agent == "coder":
            content = FIXED if rounds == 1 else CHECKED
            done = {"summary": "done", "commit_message": f"Round {rounds}"}
            return (
                _use("submit", done)
                if answered
                else _use("write_file", {"path": "calc/__init__.py", "content": content})
            )
        if agent == "tester":
            return _use("submit", {"summary": "ran the suite"}) if answered else _use("run_tests", {})
        if not answered:
            return _use("view_diff", {})
        if agent == "security" and rounds == 1:
            comment = {
                "path": "calc/__init__.py",
                "line": 5,
                "severity": "major",
                "category": "security",
                "body": WORRY,
            }
            return _use("submit", {"verdict": "request_changes", "summary": "Unchecked input.", "comments": [comment]})
        return _use("submit", {"verdict": "approve", "summary": f"{agent}: fine."})


def _answered(body: dict[str, Any]) -> bool:
    """The request answers the agent's tool call; otherwise it brings a brief (text, after any results
    owed to the agent's earlier round)."""
    last = body["messages"][-1]["content"]
    return not isinstance(last, str) and not any(block.get("type") == "text" for block in last)


def _use(name: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:12]}", "name": name, "input": tool_input}


@activity.defn(name="run_tests")
async def passing_tests(req: RunTestsInput) -> TestReport:
    return TestReport(commit_sha=req.commit_sha, command=["pytest"], status="passed", total=1, passed=1, exit_code=0)


async def test_a_repository_shapes_its_reviewer_and_adds_a_security_reviewer(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    (sample_repo / ".forgeflow.yml").write_text(SETTINGS)
    git(sample_repo, "add", "-A")
    git(sample_repo, "commit", "-qm", "agent settings")
    team = Team()
    queue = f"team-{uuid.uuid4().hex[:6]}"
    with AnthropicLoopback(respond=team) as api:
        settings = Settings.model_validate(
            {
                "FORGEFLOW_DATA_DIR": str(tmp_path / "data"),
                "FORGEFLOW_TASK_QUEUE": queue,
                "ANTHROPIC_API_KEY": "sk-ant-loopback",
                "ANTHROPIC_BASE_URL": api.base_url,
            }
        )
        (main,) = build_workers(time_skipping_env.client, settings, [queue])
        sandbox = Worker(time_skipping_env.client, task_queue=settings.sandbox_task_queue, activities=[passing_tests])
        async with main, sandbox:
            run_id = f"team-{uuid.uuid4().hex[:6]}"
            result = await time_skipping_env.client.execute_workflow(
                "IssueWorkflow",
                {"repo": str(sample_repo), "spec_content": "# Add subtract\nAdd calc.subtract(a, b)."},
                id=run_id,
                task_queue=queue,
                result_type=IssueResult,
            )
            history = await time_skipping_env.client.get_workflow_handle(run_id).fetch_history()
    st = result.state

    # Both reviewers ran inside the run, each turn's summary naming whose it was.
    summaries = {json.loads(e.user_metadata.summary.data) for e in history.events if e.user_metadata.summary.data}
    assert {"reviewer · model turn 1", "reviewer:security · model turn 1"} <= summaries

    # The guidance reaches the reviewer's model, marked as the repository's, and no one else's.
    reviewer_system = json.dumps(team.requests["reviewer"][0]["system"])
    assert GUIDANCE in reviewer_system and "repository-guidance" in reviewer_system
    assert SECURITY in json.dumps(team.requests["security"][0]["system"])
    assert not any(
        GUIDANCE in json.dumps(r["system"]) for a in ("planner", "coder", "security") for r in team.requests[a]
    )

    # The reviewer's tools only narrowed: asking for write_file was refused, by key, in the run's log.
    assert [t["name"] for t in team.requests["reviewer"][0]["tools"]] == ["view_diff", "read_file", "submit"]
    assert "write_file" not in [t["name"] for t in team.requests["security"][0]["tools"]]
    (refused,) = [line for line in st.log if "refused" in line]
    assert "agents.reviewer.tools: refused write_file" in refused

    # The security reviewer asked for changes in round 1: its comment was in the one review, and the
    # coder's second round answered it; both approved round 2.
    assert result.outcome == Outcome.APPROVED and st.round == 2 and len(st.commits) == 2
    assert WORRY in json.dumps(team.requests["coder"][-1]["messages"])
    records = Path(git(sample_repo, "rev-parse", "--absolute-git-dir")) / "forgeflow" / "reviews"
    posted = "\n".join(p.read_text() for p in records.rglob("*.md"))
    assert f"(security) {WORRY}" in posted and "security reviewer (requests changes)" in posted
    assert git(sample_repo, "show", f"{st.commits[-1]}:calc/__init__.py") + "\n" == CHECKED

    # Its model calls are the run's cost like any agent's.
    assert st.usage.by_agent["reviewer:security"].turns == 4 and st.usage.by_agent["reviewer:security"].cost_usd > 0
