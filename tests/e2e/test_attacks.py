"""Attacks through whole runs: a hostile repository and hostile model output against the real worker.

Each run goes through the real dev server, a real `python worker.py`, real git and real bubblewrap,
with a scripted model whose turns are the attacker's moves. The scripts' `expect` lines prove what
the model was told; afterwards everything a run left behind (every workflow history with its payloads
decoded, the blob store that holds the transcripts, the worker's log) is searched for the canaries
the attacks aimed at, and the host files they aimed at are checked untouched.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from contracts import api
from contracts.run import GateDecision, GateKind, IssueResult, OrchestrationState, Outcome
from testkit.scripts import submit, tool, turn, write_script
from testkit.tools import git
from tests.e2e.conftest import WorkerProcess, start_worker

pytestmark = pytest.mark.e2e


def canary(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex}"


def commit_all(repo: Path, files: dict[str, str], links: dict[str, Path] | None = None) -> None:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    for name, target in (links or {}).items():
        os.symlink(target, repo / name)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "hostile repository")


def new_repo(path: Path, files: dict[str, str], links: dict[str, Path] | None = None) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    commit_all(path, files, links)
    return path


async def wait_for_gate(handle: WorkflowHandle[Any, Any], kind: GateKind, says: str) -> str:
    """Wait until the run waits at a gate of `kind` whose reason contains `says`; its reason."""
    for _ in range(600):
        state: OrchestrationState = await handle.query(api.QUERY_STATE, result_type=OrchestrationState)
        gate = state.pending_gate
        if gate is not None and gate.kind == kind and says in gate.reason:
            return gate.reason
        if state.outcome is not None:
            raise AssertionError(f"the run ended {state.outcome} before the {kind} gate: {state.error}")
        await asyncio.sleep(0.2)
    raise AssertionError(f"no {kind} gate saying {says!r}")


async def answer(handle: WorkflowHandle[Any, Any], decision: str) -> None:
    await handle.signal(decision, GateDecision(comment="e2e", by="e2e"))


def _decoded_payloads(node: Any) -> Iterator[str]:
    """The payloads of a history in proto JSON (base64 data), decoded."""
    if isinstance(node, dict):
        if "data" in node and "metadata" in node and isinstance(node["data"], str):
            yield base64.b64decode(node["data"]).decode("utf-8", "replace")
        for value in node.values():
            yield from _decoded_payloads(value)
    elif isinstance(node, list):
        for value in node:
            yield from _decoded_payloads(value)


async def everything_left(dev_env: WorkflowEnvironment, workflow_id: str, data_dir: Path, log: Path) -> str:
    """All a run left: its and its agents' histories (payloads decoded), the blob store (transcripts:
    everything the model read), externally stored payloads, and the worker's log."""
    parts = await asyncio.to_thread(_files_left, data_dir, log)
    async for run in dev_env.client.list_workflows(f'WorkflowId STARTS_WITH "{workflow_id}"'):
        history = await dev_env.client.get_workflow_handle(run.id).fetch_history()
        parts += list(_decoded_payloads(json.loads(history.to_json())))
    return "\n".join(parts)


def _files_left(data_dir: Path, log: Path) -> list[str]:
    parts = [log.read_text(errors="replace")]
    for folder in ("blobs", "payloads"):
        for path in (data_dir / folder).rglob("*"):
            if path.is_file():
                parts.append(path.read_bytes().decode("utf-8", "replace"))
    return parts


# --- a hostile repository and a hostile model, in one run ------------------------------------

CONFTEST = """
import os

OUT = os.path.dirname(os.environ["FORGEFLOW_JUNIT_XML"])


def pytest_unconfigure(config):  # after pytest wrote its reports: swap them for links to the host
    for name, target in [("junit.xml", {canary!r}), ("coverage.xml", "/proc/self/environ")]:
        path = os.path.join(OUT, name)
        if os.path.lexists(path):
            os.remove(path)
        os.symlink(target, path)
"""
# The install step plants links where the worker once opened the test step's log and reports.
PLANT = "for n in output.log test.log junit.xml; do ln -sf {victim} /forgeflow-out/$n; done; true"


def hostile_script(path: Path) -> str:
    planner = [
        turn(tool("read_file", path=".env"), expect=["more characters not shown"]),  # the 5 MB issue, bounded
        turn(tool("search", pattern="(a|aa)+$"), expect=["DB_PASSWORD=[redacted]", "STRIPE_KEY=[redacted]"]),
        turn(submit(summary="plan", tasks=[{"id": "t1", "title": "change"}]), expect=["the pattern took over"]),
    ]
    coder = [
        turn(
            tool("write_file", path="src/a\u0000b.py", content="x = 1\n"),
            tool("write_file", path="dirlink/new.txt", content="through the link\n"),
            tool("write_file", path=".git./hooks/post-checkout", content="#!/bin/sh\n"),
            tool("write_file", path=".GIT/config", content="[core]\n"),
        ),
        turn(
            tool("write_file", path="filelink", content="now a regular file\n"),
            tool(
                "write_file", path=".gitmodules", content='[submodule "x"]\n\tpath = x\n\turl = https://example.com/x\n'
            ),
            tool("write_file", path="src/app.py", content="def app():\n    return 2\n"),
            expect=["control character U+0000", "forgeflow writes no file through a link", "inside .git"],
        ),
        turn(submit(summary="done", commit_message="Change things"), expect=["replaces the link with a regular file"]),
    ]
    tester = [
        turn(tool("run_tests")),
        turn(submit(summary="the suite wrote no report"), expect=["the runner wrote no report"]),
    ]
    return write_script(
        path, {"planner": [{"turns": planner}], "coder": [{"turns": coder}], "tester": [{"turns": tester}]}
    )


async def test_a_hostile_repository_and_model_output_reach_nothing_of_the_host(
    dev_env: WorkflowEnvironment, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    host = tmp_path / "host"
    (host / "dir").mkdir(parents=True)
    host_canary, env_canary, tail_canary = canary("HOST"), canary("ENV"), canary("TAIL")
    dotenv_secret = canary("correct-horse")
    (host / "canary.xml").write_text(f'<testsuite><testcase classname="{host_canary}" name="x"/></testsuite>')
    (host / "victim.txt").write_text("keep me\n")
    repo = new_repo(
        tmp_path / "repo",
        {
            ".env": f"# service settings\nDB_PASSWORD={dotenv_secret}\nexport STRIPE_KEY='{dotenv_secret}'\n",
            ".forgeflow.yml": f"test:\n  install: sh -c '{PLANT.format(victim=host / 'victim.txt')}'\n",
            ".forgeflow/issues/1.md": "# Change the app\n\n" + "padding " * 700_000 + tail_canary + "\n",
            "conftest.py": CONFTEST.format(canary=str(host / "canary.xml")),
            "src/app.py": "def app():\n    return 1\n",
            "src/evil.txt": "a" * 40 + "!\n",  # (a|aa)+$ backtracks for ever on this line
            "tests/test_app.py": "def test_app():\n    assert True\n",
        },
        links={"dirlink": host / "dir", "filelink": host / "victim.txt"},
    )
    worker = start_worker(workers, dev_env, tmp_path, FORGEFLOW_TEST_CANARY=env_canary)
    workflow_id = f"e2e-attack-{uuid.uuid4().hex[:8]}"
    handle = await dev_env.client.start_workflow(
        api.WORKFLOW_TYPE,
        {"repo": str(repo), "issue_number": 1, "mode": "autonomous", "max_retries": 0,
         "model_script": hostile_script(tmp_path / "script.json")},
        id=workflow_id, task_queue="forgeflow", result_type=IssueResult,
    )  # fmt: skip

    reason = await wait_for_gate(handle, "protected_paths", ".gitmodules")
    assert "filelink" not in reason  # links are the code host's call, asked about next
    await answer(handle, "approve")
    reason = await wait_for_gate(handle, "protected_paths", "symbolic links")
    assert "filelink" in reason
    await answer(handle, "approve")
    await wait_for_gate(handle, "escalation", "tests failed and no retries left")  # not an agent's failure
    await answer(handle, "reject")
    result = await asyncio.wait_for(handle.result(), timeout=120)

    assert result.outcome == Outcome.REJECTED
    report = result.state.test_results
    assert report is not None and report.status != "passed" and report.total == 0
    # The host files the attacks aimed at are as they were.
    assert list((host / "dir").iterdir()) == []
    assert (host / "victim.txt").read_text() == "keep me\n"
    # The commit: the link replaced by a file (after approval), .gitmodules (after approval), nothing else odd.
    (branch,) = result.state.branches_created
    tree = git(repo, "ls-tree", "-r", "--full-tree", branch)
    modes = {line.split("\t")[1]: line.split()[0] for line in tree.splitlines()}
    assert modes["filelink"] == "100644" and modes["dirlink"] == "120000" and ".gitmodules" in modes
    assert git(repo, "show", f"{branch}:src/app.py") == "def app():\n    return 2"
    assert not any(
        ".git" in path.split("/")[0].lower() and path not in (".gitmodules",) for path in modes if "/" in path
    )
    # Nothing any attack aimed at reached the model, the history or the logs.
    left = await everything_left(dev_env, workflow_id, tmp_path / "data", worker.log)
    for secret in (host_canary, env_canary, tail_canary, dotenv_secret):
        assert secret not in left, secret.split("-")[0]


# --- the install step's leftovers ------------------------------------------------------------


def quiet_script(path: Path, tester_expect: list[str], verdict: str = "approve") -> str:
    """Plan, no change, run the tests, review: the attack is all in the repository."""
    return write_script(path, {
        "planner": [{"turns": [turn(submit(summary="plan", tasks=[{"id": "t1", "title": "nothing"}]))]}],
        "coder": [{"turns": [turn(submit(summary="no change needed", commit_message="none"))]}],
        "tester": [{"turns": [turn(tool("run_tests")), turn(submit(summary="ran"), expect=tester_expect)]}],
        "reviewer": [{"turns": [turn(submit(verdict=verdict, summary="ok", comments=[]))]}],
    })  # fmt: skip


async def test_an_install_that_links_node_modules_to_the_host_is_refused(
    dev_env: WorkflowEnvironment, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    secret_dir = tmp_path / "host" / "secrets"
    secret_dir.mkdir(parents=True)
    secret = canary("NODE")
    (secret_dir / "key.txt").write_text(secret)
    repo = new_repo(tmp_path / "repo", {
        ".forgeflow.yml": f"test:\n  install: ln -s {secret_dir} /workspace/node_modules\n",
        "tests/test_read.py": "def test_read():\n    print(open('node_modules/key.txt').read())\n    assert False\n",
    })  # fmt: skip
    worker = start_worker(workers, dev_env, tmp_path)
    workflow_id = f"e2e-node-modules-{uuid.uuid4().hex[:8]}"
    script = quiet_script(tmp_path / "script.json", ["node_modules as something other than a folder"])
    handle = await dev_env.client.start_workflow(
        api.WORKFLOW_TYPE,
        {"repo": str(repo), "spec_content": "Check the tests.", "max_retries": 0, "model_script": script},
        id=workflow_id, task_queue="forgeflow", result_type=IssueResult,
    )  # fmt: skip
    await wait_for_gate(handle, "escalation", "tests failed and no retries left")
    await answer(handle, "reject")
    result = await asyncio.wait_for(handle.result(), timeout=120)
    report = result.state.test_results
    assert report is not None and report.status == "error" and report.total == 0
    assert not [p for p in (tmp_path / "data" / "sandbox-cache").iterdir() if p.is_dir()]  # nothing cached
    assert secret not in await everything_left(dev_env, workflow_id, tmp_path / "data", worker.log)


async def test_one_repositorys_install_never_runs_in_anothers_tests(
    dev_env: WorkflowEnvironment, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """Two repositories with the same manifests and install command. The first one's install plants
    a .pth file in the cached virtualenv; the second one's tests must not run it."""
    install = (
        "sh -c 'test -f ATTACKER || exit 0; "
        'echo "import os; os.environ[\\"PLANTED_BY\\"] = \\"attacker\\"" '
        '> $(python -c "import site; print(site.getsitepackages()[0])")/zz_planted.pth\''
    )
    shared = {"requirements.txt": "\n", ".forgeflow.yml": f"test:\n  install: {json.dumps(install)}\n"}
    probe = "import os\n\n\ndef test_clean():\n    assert os.environ.get('PLANTED_BY') is None\n"
    attacker = new_repo(
        tmp_path / "attacker", {**shared, "ATTACKER": "", "tests/test_a.py": "def test_a():\n    pass\n"}
    )
    victim = new_repo(tmp_path / "victim", {**shared, "tests/test_probe.py": probe})
    start_worker(workers, dev_env, tmp_path)
    results = []
    for repo in (attacker, victim):
        handle = await dev_env.client.start_workflow(
            api.WORKFLOW_TYPE,
            {"repo": str(repo), "spec_content": "Check the tests.", "max_retries": 0,
             "model_script": quiet_script(tmp_path / f"{repo.name}.json", [])},
            id=f"e2e-cache-{repo.name}-{uuid.uuid4().hex[:8]}", task_queue="forgeflow", result_type=IssueResult,
        )  # fmt: skip
        results.append(await asyncio.wait_for(handle.result(), timeout=180))
    for result in results:
        assert result.outcome == Outcome.APPROVED, result.state.test_results
    victim_report = results[1].state.test_results
    assert victim_report is not None and victim_report.passed == 1
    assert victim_report.install is not None and not victim_report.install.cached
