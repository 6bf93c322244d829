"""The example LangGraph graph as an extra reviewer, on real workers: the worker running it is killed
with -9 while its second node waits for the model, and the retry on another worker resumes at that
node. Its first node's model call is never asked again, and its usage is in the run's.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from contracts.run import IssueResult, Outcome
from testkit.scripts import reviewer_run, write_script
from testkit.tools import git
from tests.e2e.conftest import WorkerProcess, start_worker, wait_until
from tests.e2e.recovery import running_attempt

pytestmark = pytest.mark.e2e
FIXED = "def add(a, b):\n    return a + b\n\n\ndef subtract(a, b):\n    return a - b\n"
CONCERNS = "No input reaches a shell or a path: nothing security-relevant."
COMMENT = {
    "path": "calc/__init__.py",
    "line": 5,
    "severity": "info",
    "category": "security",
    "body": "Pure arithmetic.",
}
VERDICT = {"verdict": "approve", "summary": "Safe.", "comments": [COMMENT]}


def said(text: str, *, expect: list[str] | None = None) -> dict[str, Any]:
    """A scripted model answer that is text only (what a graph's node reads)."""
    usage = {"input_tokens": 300, "output_tokens": 40}
    return {
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "usage": usage,
        "expect": expect or [],
    }


def asked(ledger: Path) -> list[tuple[int, int]]:
    """(activity attempt, turn) of each model call the security graph made (the scripted model's ledger)."""
    if not ledger.exists():
        return []
    lines = [json.loads(line) for line in ledger.read_text().splitlines() if line]
    return [(r["attempt"], r["turn"]) for r in lines if r["agent"] == "security"]


@pytest.mark.long
async def test_a_graph_reviewer_resumes_at_its_last_node_after_its_worker_is_killed(
    dev_env: WorkflowEnvironment, workers: list[WorkerProcess], sample_repo: Path, tmp_path: Path
) -> None:
    # A pull request to review (the local host's #3: a branch named in .forgeflow/prs/3), and the
    # repository's security reviewer beside the main one.
    (sample_repo / ".forgeflow.yml").write_text("reviewers:\n  - name: security\n")
    (sample_repo / ".forgeflow" / "prs").mkdir(parents=True)
    (sample_repo / ".forgeflow" / "prs" / "3").write_text("feature\n")
    git(sample_repo, "add", "-A")
    git(sample_repo, "commit", "-qm", "a security reviewer")
    git(sample_repo, "checkout", "-qb", "feature")
    (sample_repo / "calc" / "__init__.py").write_text(FIXED)
    git(sample_repo, "commit", "-qam", "Add subtract")
    git(sample_repo, "checkout", "-q", "main")
    graph_turns = [said(CONCERNS), said(json.dumps(VERDICT), expect=[CONCERNS])]  # node 2 reads node 1's state
    script = write_script(
        tmp_path / "s.json", {"reviewer": [reviewer_run()], "reviewer:security": [{"turns": graph_turns}]}
    )
    ledger = tmp_path / "ledger.jsonl"
    # Each model answer takes 4 s: the kill lands while the second node waits, even on a loaded machine.
    env = {"FORGEFLOW_SCRIPT_LEDGER": str(ledger), "FORGEFLOW_SCRIPT_DELAY": "4"}
    alive = [start_worker(workers, dev_env, tmp_path, log_name=f"worker-{n}.log", **env) for n in range(2)]
    run_id = "graph-reviewer-run"
    params = {
        "repo": str(sample_repo),
        "pr_number": 3,
        "mode": "review",
        "model_script": script,
        "graphs": {"reviewer:security": "graphs.security_review:graph"},
    }
    handle = await dev_env.client.start_workflow(
        "IssueWorkflow", params, id=run_id, task_queue="forgeflow", result_type=IssueResult
    )

    # The second node is waiting for its model: kill the worker whose attempt asked it. (On a loaded
    # machine an earlier attempt may already have been lost to a heartbeat timeout: count by attempt.)
    await asyncio.to_thread(wait_until, lambda: any(t == 1 for _, t in asked(ledger)), timeout=120, what="node 2")
    attempt, pid = await running_attempt(dev_env.client, run_id, "run_graph", within=60)
    assert (attempt, 1) in asked(ledger)
    (victim,) = [w for w in alive if w.proc.pid == pid]
    victim.kill9()
    result = await asyncio.wait_for(handle.result(), 120)

    assert result.outcome == Outcome.REVIEWED
    after = [turn for n, turn in asked(ledger) if n > attempt]
    assert after == [1]  # the retry asked only the second node's call: the first node's is checkpointed
    spent = result.state.usage.by_agent["reviewer:security"]
    # Every completed call counted once (the one lost with the killed worker never completed): 2 normally.
    assert spent.turns == len(asked(ledger)) - 1 >= 2 and spent.usage.input_tokens == 300 * spent.turns
    assert any(c.body == "(security) Pure arithmetic." for c in result.state.review_comments)
