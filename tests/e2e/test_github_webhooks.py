"""GitHub-native end to end: signed webhook deliveries start runs, answer gates and start review rounds.

Real parts throughout: `forgeflow webhook` as its own process (uvicorn), `python worker.py` workers
on the dev server, the loopback GitHub (a real git repository behind GitHub's REST shapes) acting
as a GitHub App, and deliveries signed and sent as GitHub sends them (testkit/loopback/webhooks.py).
The model is a scripted replay whose `expect` fails a run unless the agent's context holds what a
person asked. A worker is killed with -9 just after the maintainer's `/approve` is delivered; every
count below holds anyway.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from contracts.github_events import EventOutcome
from contracts.run import IssueResult, OrchestrationState, Outcome
from starter.webhook import event_workflow_id
from testkit.loopback.github_api import GitHubLoopback, Issue
from testkit.loopback.webhooks import WebhookSender
from testkit.scripts import coder_run, planner_run, reviewer_run, submit, tester_run, tool, turn, write_script
from testkit.tools import git
from tests.e2e.conftest import E2E_GITHUB_TOKEN, ROOT, WorkerProcess, start_worker, wait_until
from tests.e2e.recovery import Hold, running_on

pytestmark = pytest.mark.e2e
SECRET = "e2e-webhook-secret"
RECORD_TO = os.environ.get("FORGEFLOW_RECORD_HISTORY")  # see tests/replay/test_replay.py
APP_ID, INSTALLATION = 4242, 99
FIXED = "def add(a, b):\n    return a + b\n\n\ndef subtract(a, b):\n    return a - b\n"
DOCUMENTED = 'def add(a, b):\n    return a + b\n\n\ndef subtract(a, b):\n    """a minus b."""\n    return a - b\n'
ASK = "subtract needs a docstring"


class Webhook:
    """`python -m starter webhook` on a free port, until stopped."""

    def __init__(self, dev_env: WorkflowEnvironment, tmp_path: Path, run_options: dict[str, Any]) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "ANTHROPIC_"))},
            "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "FORGEFLOW_DATA_DIR": str(tmp_path / "webhook"),
            "GITHUB_WEBHOOK_SECRET": SECRET,
            "FORGEFLOW_RUN_OPTIONS": json.dumps(run_options),
            "FORGEFLOW_UI_URL": "http://ui.test",
        }
        log = (tmp_path / "webhook.log").open("ab")
        argv = [sys.executable, "-m", "starter", "webhook", "--port", str(self.port)]
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._healthy, timeout=60, what="the webhook to answer /health")
        self.sender = WebhookSender(f"http://127.0.0.1:{self.port}/webhook", SECRET)

    def _healthy(self) -> bool:
        assert self.proc.poll() is None, "forgeflow webhook exited"
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)


@pytest.fixture
def app_github(sample_repo: Path, tmp_path: Path) -> Iterator[GitHubLoopback]:
    """acme/calc on the loopback GitHub, reached as a GitHub App installation; issue #7 by octocat."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "app.pem").write_bytes(pem)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with GitHubLoopback(
        "acme", "calc", sample_repo, "no-personal-token", app=(APP_ID, INSTALLATION, public.decode())
    ) as gh:
        gh.issues[7] = Issue(title="Add subtract", body="Please add calc.subtract(a, b).")
        yield gh


async def _event(dev_env: WorkflowEnvironment, delivery_id: str) -> EventOutcome:
    handle = dev_env.client.get_workflow_handle(event_workflow_id(delivery_id), result_type=EventOutcome)
    outcome: EventOutcome = await handle.result()
    return outcome


async def _state(handle: WorkflowHandle[Any, Any]) -> OrchestrationState:
    state: OrchestrationState = await handle.query("state", result_type=OrchestrationState)
    return state


@pytest.mark.long
async def test_labels_comments_and_reviews_drive_runs_with_every_write_once(
    dev_env: WorkflowEnvironment,
    workers: list[WorkerProcess],
    app_github: GitHubLoopback,
    sample_repo: Path,
    tmp_path: Path,
) -> None:
    gh = app_github
    env = {
        "GITHUB_APP_ID": str(APP_ID),
        "GITHUB_APP_INSTALLATION_ID": str(INSTALLATION),
        "GITHUB_APP_PRIVATE_KEY": str(tmp_path / "app.pem"),
        "GITHUB_API_URL": gh.base_url,
    }
    alive = [start_worker(workers, dev_env, tmp_path, **env, log_name=f"worker-{n}.log") for n in range(2)]
    first_script = write_script(
        tmp_path / "first.json",
        {
            "planner": [planner_run()],
            "coder": [coder_run(FIXED, expect=["Please add calc.subtract"])],
            "tester": [tester_run()],
            "reviewer": [reviewer_run()],
        },
    )
    hook = Webhook(dev_env, tmp_path, {"model_script": first_script, "require_plan_approval": True})

    # A bad signature starts nothing; a label starts one run, however often it is delivered.
    labelled = gh.label_issue(7, "forgeflow", "octocat")
    assert hook.sender.deliver("issues", labelled, signature="sha256=" + "0" * 64).status_code == 401
    delivery = str(uuid.uuid4())
    assert hook.sender.deliver("issues", labelled, delivery_id=delivery).status_code == 202
    assert hook.sender.deliver("issues", labelled, delivery_id=delivery).status_code in (200, 202)
    started = await _event(dev_env, delivery)
    assert started.done == "started" and started.run_id
    assert hook.sender.deliver("issues", labelled, delivery_id=delivery).json() == {
        "duplicate": event_workflow_id(delivery)
    }
    run = dev_env.client.get_workflow_handle(started.run_id, result_type=IssueResult)
    await _until(lambda: _at_gate(run), seconds=60, what="the plan gate")

    # `/approve` from someone without write access: a polite answer, and the gate still waits.
    stranger = hook.sender.deliver("issue_comment", gh.comment(7, "stranger", "/approve"))
    refused = await _event(dev_env, stranger.json()["workflow_id"].removeprefix("github-delivery-"))
    assert refused.done == "not_allowed" and "write access" in refused.message
    assert (await _state(run)).pending_gate is not None

    # `/approve` from a maintainer releases it, though the worker acknowledging it is killed -9 after
    # GitHub stored its reaction and before the worker heard so: the retry finds it, and adds none.
    hold = gh.hold = Hold("POST", r"/issues/comments/\d+/reactions")
    approval = hook.sender.deliver("issue_comment", gh.comment(7, "maintainer", "/approve"))
    approval_id = approval.json()["workflow_id"]
    await replace_the_worker_held(
        dev_env,
        hold,
        approval_id,
        "react",
        alive,
        lambda: start_worker(workers, dev_env, tmp_path, **env, log_name="worker-2.log"),
    )
    answered = await _event(dev_env, approval_id.removeprefix("github-delivery-"))
    assert answered.done == "answered" and answered.run_id == started.run_id
    result = await run.result()
    assert result.outcome == Outcome.APPROVED
    (pr_url,) = result.state.prs_created
    number = int(pr_url.rsplit("/", 1)[1])
    (branch,) = result.state.branches_created
    head = git(sample_repo, "rev-parse", branch)

    # The check run on the pull request's head went queued → in progress → completed, linking the run.
    (check,) = [c for c in gh.check_runs.values() if c["head_sha"] == head and c["external_id"] == started.run_id]
    states = [status for status, _, _ in gh.check_run_states[check["id"]]]
    assert states[0] == "queued" and states[-1] == "completed" and "in_progress" in states
    assert states.index("completed") == len(states) - 1 and check["conclusion"] == "success"
    assert check["details_url"].endswith(f"/workflows/{started.run_id}")

    # A maintainer requests changes on a line: the next round is one commit on the same pull request.
    hook.stop()
    second_script = write_script(
        tmp_path / "second.json",
        {
            "coder": [_answering_coder(expect=[ASK, "calc/__init__.py:5", "@maintainer"])],
            "tester": [tester_run()],
            "reviewer": [reviewer_run()],
        },
    )
    hook = Webhook(dev_env, tmp_path, {"model_script": second_script})
    # The worker posting the reply ("On it: run …") is killed after GitHub stored it: the round was
    # started once, and the retried reply finds the one GitHub has.
    hold = gh.hold = Hold("POST", rf"/issues/{number}/comments")
    reviewed = gh.review(number, "maintainer", "changes_requested", "Nearly there.", [("calc/__init__.py", 5, ASK)])
    round_delivery = hook.sender.deliver("pull_request_review", reviewed).json()["workflow_id"]
    await replace_the_worker_held(
        dev_env,
        hold,
        round_delivery,
        "post_comment",
        alive,
        lambda: start_worker(workers, dev_env, tmp_path, **env, log_name="worker-3.log"),
    )
    next_round = await _event(dev_env, round_delivery.removeprefix("github-delivery-"))
    assert next_round.done == "started" and next_round.run_id
    second = await dev_env.client.get_workflow_handle(next_round.run_id, result_type=IssueResult).result()
    assert second.outcome == Outcome.APPROVED
    (commit,) = second.state.commits
    assert git(sample_repo, "rev-parse", branch) == commit and git(sample_repo, "rev-parse", f"{commit}^") == head
    assert git(sample_repo, "diff", "--name-only", head, commit) == "calc/__init__.py"
    assert git(sample_repo, "show", f"{commit}:calc/__init__.py") + "\n" == DOCUMENTED
    assert second.state.prs_created == [pr_url] and len(gh.pulls) == 1
    hook.stop()

    # Every write once: one pull request, one branch, one reply per acted-on delivery, one reaction per command.
    writes = Counter((m, p.split("?")[0]) for m, p in gh.requests if m in ("POST", "PATCH"))
    assert writes[("POST", "/repos/acme/calc/pulls")] == 1 and writes[("POST", "/repos/acme/calc/git/refs")] == 1
    replies = [
        c
        for c in gh.issues[7].comments
        if c["user"]["login"].endswith("[bot]") and "<!-- forgeflow:github-delivery-" in c["body"]
    ]
    assert len(replies) == 3  # the label's run, the stranger's refusal, the maintainer's answer
    assert len([c for c in gh.pulls[number].get("comments", []) if "github-delivery-" in c["body"]]) == 1
    assert len([p for m, p in gh.requests if m == "POST" and p.endswith(f"/issues/{number}/comments")]) == 1
    started_runs = [w.id async for w in dev_env.client.list_workflows(f"WorkflowId = '{next_round.run_id}'")]
    assert len(started_runs) == 1
    reacted = [p for m, p in gh.requests if m == "POST" and p.endswith("/reactions")]
    assert len(reacted) == 2  # asked again after the kill...
    assert sum(len(found) for (kind, _), found in gh.reactions.items() if kind == "comment") == 1  # ...and kept once
    assert all(d.elapsed < 10 for d in hook.sender.deliveries)  # within GitHub's limit

    if RECORD_TO:  # for tests/replay: the event workflows of each kind, and both runs
        deliveries = [event_workflow_id(delivery), approval_id, round_delivery]
        for workflow_id in [*deliveries, started.run_id, next_round.run_id]:
            history = await dev_env.client.get_workflow_handle(workflow_id).fetch_history()
            (Path(RECORD_TO) / f"{workflow_id}.json").write_text(history.to_json())


async def replace_the_worker_held(
    dev_env: WorkflowEnvironment,
    hold: Hold,
    workflow_id: str,
    activity: str,
    alive: list[WorkerProcess],
    start: Callable[[], WorkerProcess],
) -> None:
    """Once GitHub has served `hold`'s request, kill -9 the worker whose `activity` of `workflow_id` made
    it (it never hears the answer), start another, and let GitHub answer the dead one."""
    assert await asyncio.to_thread(hold.reached.wait, 60)
    pid = await running_on(dev_env.client, workflow_id, activity, attempt=1, within=30)
    (victim,) = [w for w in alive if w.proc.pid == pid]
    victim.kill9()
    alive.append(start())
    hold.release.set()


async def _at_gate(run: WorkflowHandle[Any, Any]) -> bool:
    try:
        state = await _state(run)
    except RPCError:  # the run has not started its first task yet
        return False
    return state.pending_gate is not None and state.pending_gate.kind == "plan_approval"


async def _until(check: Callable[[], Awaitable[bool]], *, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _answering_coder(*, expect: list[str]) -> dict[str, Any]:
    return {
        "turns": [
            turn(tool("read_file", path="calc/__init__.py"), expect=expect),
            turn(tool("write_file", path="calc/__init__.py", content=DOCUMENTED)),
            turn(submit(summary="documented subtract", commit_message="Document subtract")),
        ]
    }


async def test_commands_that_start_refuse_or_explain_each_answer_once(
    dev_env: WorkflowEnvironment,
    workers: list[WorkerProcess],
    github: GitHubLoopback,
    sample_repo: Path,
    tmp_path: Path,
) -> None:
    """With a token: `/forgeflow plan` posts a plan, a second trigger is refused while a run works, a gate
    refuses what it does not take (the reply says why), `/forgeflow review` reviews a pull request,
    unknown commands are explained, and a command with no run to answer says so."""
    gh = github
    # Opened by someone without write access: a maintainer's command vouches for it.
    gh.issues[8] = Issue(title="Add multiply", body="Please add calc.multiply(a, b).", author="outsider")
    git(sample_repo, "checkout", "-qb", "feature/divide")
    (sample_repo / "calc" / "__init__.py").write_text(FIXED + "\n\ndef divide(a, b):\n    return a / b\n")
    git(sample_repo, "commit", "-qam", "Add divide")
    git(sample_repo, "checkout", "-q", "main")
    gh.pulls[50] = {"title": "Add divide", "body": "", "state": "open", "draft": False,
                    "head": {"ref": "feature/divide"}, "base": {"ref": "main"}}  # fmt: skip
    env = {"GITHUB_TOKEN": E2E_GITHUB_TOKEN, "GITHUB_API_URL": gh.base_url}
    start_worker(workers, dev_env, tmp_path, **env)
    script = write_script(tmp_path / "s.json", {"planner": [planner_run()], "reviewer": [reviewer_run()]})
    hook = Webhook(dev_env, tmp_path, {"model_script": script, "require_plan_approval": True})

    async def said(number: int, body: str, sender: str = "octocat") -> EventOutcome:
        answer = hook.sender.deliver("issue_comment", gh.comment(number, sender, body))
        assert answer.status_code == 202, answer.text
        return await _event(dev_env, answer.json()["workflow_id"].removeprefix("github-delivery-"))

    planned = await said(8, "/forgeflow plan")
    assert planned.done == "started" and planned.run_id
    plan_run = await dev_env.client.get_workflow_handle(planned.run_id, result_type=IssueResult).result()
    assert plan_run.outcome == Outcome.PLANNED
    assert (await said(8, "/approve")).done == "refused"  # the plan run has ended: nothing waits here

    # Two triggers at once start one run between them; once it has ended, the next starts another.
    gh.issues[9] = Issue(title="Add power", body="Please add calc.power(a, b).", author="octocat")
    sent = [hook.sender.deliver("issue_comment", gh.comment(9, "octocat", "/forgeflow plan")) for _ in range(2)]
    assert [answer.status_code for answer in sent] == [202, 202]
    together = [await _event(dev_env, a.json()["workflow_id"].removeprefix("github-delivery-")) for a in sent]
    assert sorted(outcome.done for outcome in together) == ["refused", "started"]
    thread_run = together[0].run_id
    assert thread_run is not None and thread_run == together[1].run_id and thread_run.endswith("-9")
    runs_of_9 = f"WorkflowType = 'IssueWorkflow' AND WorkflowId = '{thread_run}'"
    assert len([w async for w in dev_env.client.list_workflows(runs_of_9)]) == 1
    done_9 = await dev_env.client.get_workflow_handle(thread_run, result_type=IssueResult).result()
    assert done_9.outcome == Outcome.PLANNED
    later = await said(9, "/forgeflow plan")
    assert later.done == "started" and later.run_id == thread_run
    assert (await dev_env.client.get_workflow_handle(thread_run, result_type=IssueResult).result()).outcome == (
        Outcome.PLANNED
    )
    assert len([w async for w in dev_env.client.list_workflows(runs_of_9)]) == 2

    gated = await said(7, "/forgeflow run")
    assert gated.done == "started" and gated.run_id
    run = dev_env.client.get_workflow_handle(gated.run_id, result_type=IssueResult)
    await _until(lambda: _at_gate(run), seconds=60, what="the plan gate")
    again = await said(7, "/forgeflow run")
    assert again.done == "refused" and again.run_id == gated.run_id and "already working" in again.message
    empty = await said(7, "/feedback")
    assert empty.done == "refused" and "feedback needs a comment" in empty.message
    rejected = await said(7, "/reject not now", sender="maintainer")
    assert rejected.done == "answered"
    assert (await run.result()).outcome == Outcome.REJECTED

    explained = await said(7, "/forgeflow deploy")
    assert explained.done == "explained" and "/forgeflow review" in explained.message
    reviewed = await said(50, "/forgeflow review")
    assert reviewed.done == "started" and reviewed.run_id
    review_run = await dev_env.client.get_workflow_handle(reviewed.run_id, result_type=IssueResult).result()
    assert review_run.outcome == Outcome.REVIEWED and len(gh.reviews[50]) == 1
    hook.stop()

    # One reply per delivery, each linking the run it is about; one reaction per acted-on comment.
    replies = {n: [c["body"] for c in gh.issues[n].comments if "<!-- forgeflow:github-delivery-" in c["body"]]
               for n in (7, 8)}  # fmt: skip
    assert len(replies[8]) == 2 and len(replies[7]) == 5
    assert f"http://ui.test/namespaces/default/workflows/{gated.run_id}" in replies[7][0]
    assert sum(len(found) for (kind, _), found in gh.reactions.items() if kind == "comment") == 11
