"""A worker proves its object store usable before it serves: `python worker.py`, as deployed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from storage.store import SETTING
from testkit.s3 import S3Server

ROOT = Path(__file__).resolve().parents[2]


def _worker(tmp_path: Path, address: str, **env: str) -> subprocess.Popen[bytes]:
    """`python worker.py --queue forgeflow` in its own process group, its output in tmp_path/worker.log."""
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "FORGEFLOW_DATA_DIR": str(tmp_path / "data")}
    with (tmp_path / "worker.log").open("wb") as out:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py"), "--queue", "forgeflow"],
            env={**base, "TEMPORAL_ADDRESS": address, **env}, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def _serves(proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> str:
    """The worker's output once it serves; stops it (SIGTERM to its group, then SIGKILL)."""
    deadline = time.monotonic() + timeout
    try:
        while "serving ['forgeflow']" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None and "serving ['forgeflow']" in log.read_text(), log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
    return log.read_text()


def test_a_worker_serves_with_a_local_store(time_skipping_env: WorkflowEnvironment, tmp_path: Path) -> None:
    address = time_skipping_env.client.service_client.config.target_host
    store = tmp_path / "objects"
    out = _serves(_worker(tmp_path, address, FORGEFLOW_STORAGE_URL=store.as_uri()), tmp_path / "worker.log")
    assert "object store" in out and store.as_uri() in out and "local" in out
    assert store.is_dir() and not list((store / ".forgeflow-probe").iterdir())  # the probe is deleted


def test_a_worker_serves_with_an_s3_store(time_skipping_env: WorkflowEnvironment, s3: S3Server, tmp_path: Path) -> None:
    address = time_skipping_env.client.service_client.config.target_host
    url = s3.url(f"workers/{tmp_path.name}")
    out = _serves(_worker(tmp_path, address, FORGEFLOW_STORAGE_URL=url, **s3.env), tmp_path / "worker.log")
    assert "object store" in out and url in out and "s3" in out
    assert s3.secret_access_key not in out


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("problem", ["closed endpoint", "wrong secret", "not a store"])
def test_a_worker_with_an_unusable_store_stops_with_one_line(s3: S3Server, tmp_path: Path, problem: str) -> None:
    env = {**s3.env, "FORGEFLOW_STORAGE_URL": s3.url("workers")}
    if problem == "closed endpoint":
        env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{_closed_port()}"
    elif problem == "wrong secret":
        env["AWS_SECRET_ACCESS_KEY"] = "not-the-secret"
    else:
        env["FORGEFLOW_STORAGE_URL"] = "relative/objects"
    # The store is checked before the server is looked for. Not a local address: were the check to
    # pass, the worker would fail to find a server rather than start an embedded one.
    proc = _worker(tmp_path, "temporal.invalid:7233", **env)
    try:
        assert proc.wait(timeout=120) == 2
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    lines = (tmp_path / "worker.log").read_text().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("forgeflow worker cannot start:"), lines
    assert SETTING in lines[0] and s3.secret_access_key not in lines[0] and "not-the-secret" not in lines[0]
    if problem != "not a store":
        assert "AWS_ENDPOINT_URL" in lines[0] and s3.url("workers") in lines[0]


def test_the_demo_with_an_unusable_store_stops_with_one_line(s3: S3Server, tmp_path: Path) -> None:
    """`forgeflow demo` runs its workers itself: it checks the store the same way, before the server."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "FORGEFLOW_DATA_DIR": str(tmp_path / "data"),
        "TEMPORAL_ADDRESS": "temporal.invalid:7233",
        **s3.env,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{_closed_port()}",
        "FORGEFLOW_STORAGE_URL": s3.url("demo"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "starter", "demo"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done
    assert done.stderr.startswith("forgeflow demo cannot start:") and SETTING in done.stderr, done.stderr
    assert "AWS_ENDPOINT_URL" in done.stderr and s3.secret_access_key not in done.stderr + done.stdout
