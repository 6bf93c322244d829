"""`python worker.py` serving both queues: the process that launches bubblewrap holds no secret.

The sandbox queue runs in a child process with an allowlisted environment; it gets the codec key
ring through a pipe and the object store's settings (FORGEFLOW_STORAGE_URL, AWS_*), and it dies with
the worker that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from config.settings import SECRET_VARIABLES, Settings
from contracts.run import IssueResult, Outcome
from payloads.codec import new_key
from payloads.converter import data_converter
from starter.sample import create_sample_repo, demo_input
from testkit.s3 import S3Server
from testkit.tools import git
from tests.e2e.conftest import WorkerProcess, start_worker, wait_until

pytestmark = pytest.mark.e2e


def _status(pid: int) -> dict[str, str]:
    """/proc/<pid>/status as a dict ({} once the process is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _ancestors(pid: int) -> list[int]:
    """The parent, grandparent, … of `pid` (nearest first), as far as they can be read."""
    chain: list[int] = []
    while len(chain) < 64:
        parent = int(_status(pid).get("PPid", "0"))
        if parent <= 1:
            return chain
        chain.append(parent)
        pid = parent
    return chain


def bwrap_launchers(root: int) -> set[int]:
    """The processes below `root` that started a bubblewrap: each bwrap's nearest ancestor that is not
    itself bwrap (bwrap forks its own inner bwrap). Processes of other tests are not `root`'s."""
    launchers = set()
    for pid in _pids():
        if _status(pid).get("Name") != "bwrap":
            continue
        chain = _ancestors(pid)
        launcher = next((a for a in chain if _status(a).get("Name") != "bwrap"), None)
        if root in chain and launcher is not None:
            launchers.add(launcher)
    return launchers


def sandbox_children(parent: int) -> list[int]:
    return [pid for pid in _pids() if _status(pid).get("PPid") == str(parent) and b"forgeflow-sandbox" in _cmdline(pid)]


def _cmdline(pid: int) -> bytes:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    return b""


def environ(pid: int) -> tuple[dict[str, str], bytes]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (entry.decode(errors="replace").partition("=") for entry in raw.split(b"\0") if entry)
    return {name: value for name, _, value in pairs}, raw


def gone(pid: int) -> bool:
    """Exited: no such process, or a zombie nobody reaped (its parent was killed)."""
    return _status(pid).get("State", "Z").startswith("Z")


def slow_sample_repo(dest: Path) -> Path:
    """The demo's sample plus a test that sleeps, so the sandbox is there to be looked at."""
    repo = create_sample_repo(dest)
    (repo / "tests" / "test_slow.py").write_text("import time\n\n\ndef test_slow():\n    time.sleep(4)\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a slow test")
    return repo


async def test_the_process_that_launches_bubblewrap_holds_no_secret(
    dev_env: WorkflowEnvironment, workers: list[WorkerProcess], tmp_path: Path, s3: S3Server
) -> None:
    """The run's content is on S3 here, so the sandbox worker reads the overlays from there with the
    store's credentials, the one credential it holds."""
    anthropic, github = f"sk-ant-{secrets.token_hex(16)}", f"ghp_{secrets.token_hex(18)}"
    key = new_key()
    ring = json.dumps({"e2e": key})
    storage = {"FORGEFLOW_STORAGE_URL": s3.url(f"e2e/{tmp_path.name}"), **s3.env}
    main = start_worker(
        workers, dev_env, tmp_path,
        ANTHROPIC_API_KEY=anthropic, GITHUB_TOKEN=github, FORGEFLOW_CODEC_KEYS=ring, **storage,
    )  # fmt: skip
    client = await Client.connect(
        dev_env.client.service_client.config.target_host,
        data_converter=data_converter(Settings.model_validate({"FORGEFLOW_CODEC_KEYS": ring})),
    )
    handle = await client.start_workflow(
        "IssueWorkflow", demo_input(slow_sample_repo(tmp_path / "textkit")), id=f"e2e-nosecret-{uuid.uuid4().hex[:8]}",
        task_queue="forgeflow", result_type=IssueResult,
    )  # fmt: skip

    launchers = await asyncio.to_thread(
        wait_until, lambda: bwrap_launchers(main.proc.pid), timeout=120, what="a sandbox to run"
    )
    for launcher in launchers:
        assert _status(launcher)["PPid"] == str(main.proc.pid), "bubblewrap is launched by the worker's child"
        env, raw = environ(launcher)
        assert not set(SECRET_VARIABLES) & env.keys(), sorted(env)
        for value in (anthropic, github, key):
            assert value.encode() not in raw
        assert env["FORGEFLOW_CODEC_KEYS_FILE"].startswith("/dev/fd/")  # the ring came through a pipe
        assert {name: env.get(name) for name in storage} == storage  # and the store's settings
    main_env, _ = environ(main.proc.pid)  # not vacuous: the worker itself has them all
    assert (main_env["ANTHROPIC_API_KEY"], main_env["GITHUB_TOKEN"], main_env["FORGEFLOW_CODEC_KEYS"]) == (
        anthropic,
        github,
        ring,
    )

    result = await asyncio.wait_for(handle.result(), timeout=240)
    assert result.outcome == Outcome.APPROVED  # so the child decrypted its payloads with the piped ring
    assert result.state.test_results is not None and result.state.test_results.status == "passed"
    assert not (tmp_path / "data" / "blobs").exists()  # transcripts and edits went to S3, not the disk


async def test_the_sandbox_worker_dies_with_a_killed_worker(
    dev_env: WorkflowEnvironment, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    main = start_worker(workers, dev_env, tmp_path)
    try:
        (child,) = await asyncio.to_thread(
            wait_until, lambda: sandbox_children(main.proc.pid), timeout=60, what="the sandbox worker's process"
        )
        os.kill(main.proc.pid, signal.SIGKILL)  # the worker alone, not its process group
        main.proc.wait(timeout=10)
        await asyncio.to_thread(wait_until, lambda: gone(child), timeout=30, what="the orphaned sandbox worker to exit")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(main.proc.pid, signal.SIGKILL)  # whatever a failed check left behind


async def test_the_worker_exits_when_its_sandbox_worker_dies(
    dev_env: WorkflowEnvironment, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    main = start_worker(workers, dev_env, tmp_path)
    (child,) = await asyncio.to_thread(
        wait_until, lambda: sandbox_children(main.proc.pid), timeout=60, what="the sandbox worker's process"
    )
    os.kill(child, signal.SIGKILL)
    code = await asyncio.to_thread(main.proc.wait, 60)
    assert code == 1, main.log.read_text()[-2000:]
    assert "the sandbox worker exited" in main.log.read_text()
