"""With the codec on, the server keeps only ciphertext; the codec server lets the `temporal` CLI
(and so the Web UI) read the run, also after the key was rotated."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from contracts.run import IssueResult, Outcome
from payloads.codec import new_key
from payloads.converter import data_converter
from starter.sample import create_sample_repo, demo_input
from testkit.tools import installed_binary
from tests.e2e.conftest import ROOT, WorkerProcess, start_worker, wait_until

pytestmark = pytest.mark.e2e
PLAINTEXT = ["max_length", "word boundary", "slugify"]  # the spec's words and the model's code
TOKEN = "codec-test-token-4471"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def codec_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(keys: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
        port = _free_port()
        env = {**os.environ, "FORGEFLOW_CODEC_KEYS": json.dumps(keys), "FORGEFLOW_CODEC_TOKEN": TOKEN}
        proc = subprocess.Popen(
            [sys.executable, "-m", "starter", "codec-server", "--port", str(port)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        procs.append(proc)
        wait_until(lambda: _listening(port), timeout=30, what="the codec server")
        return proc, port

    yield start  # type: ignore[misc]
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def readable(text: str) -> str:
    """The text with every base64 value in it decoded too (payload data is base64 in JSON)."""
    decoded = []
    for candidate in re.findall(r'"([A-Za-z0-9+/=]{8,})"', text):
        with contextlib.suppress(ValueError):
            decoded.append(base64.b64decode(candidate, validate=True).decode("utf-8", errors="replace"))
    return text + "\n".join(decoded)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def show(dev_env: WorkflowEnvironment, workflow_id: str, *extra: str) -> str:
    address = dev_env.client.service_client.config.target_host
    done = subprocess.run(
        [installed_binary("temporal"), "workflow", "show", "--workflow-id", workflow_id, "--address", address,
         "-o", "json", *extra],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_history_is_encrypted_and_the_codec_server_decodes_it(
    dev_env: WorkflowEnvironment, workers: list[WorkerProcess], tmp_path: Path, codec_server: object
) -> None:
    old = {"2026-10": new_key()}
    start_worker(workers, dev_env, tmp_path, FORGEFLOW_CODEC_KEYS=json.dumps(old))
    settings = Settings.model_validate({"FORGEFLOW_CODEC_KEYS": json.dumps(old)})
    client = await Client.connect(
        dev_env.client.service_client.config.target_host, data_converter=data_converter(settings)
    )
    repo = create_sample_repo(tmp_path / "textkit")
    run_id = f"e2e-codec-{uuid.uuid4().hex[:8]}"
    result = await asyncio.wait_for(
        client.execute_workflow(
            "IssueWorkflow", demo_input(repo), id=run_id, task_queue="forgeflow", result_type=IssueResult
        ),
        timeout=180,
    )
    assert result.outcome == Outcome.APPROVED  # the run works encrypted end to end

    # What the server stores: ciphertext only, for the run and its agents' turns in it.
    raw = {run_id: show(dev_env, run_id)}
    for wid, text in raw.items():
        seen = readable(text)
        assert "binary/encrypted" in seen and "2026-10" in seen  # encrypted, and with which key
        for word in PLAINTEXT:
            assert word not in seen, f"{word!r} in plain text in {wid}'s history"

    # Rotate: a new active key; the old one stays in the ring to read old runs.
    start = codec_server  # type: ignore[assignment]
    _, port = start({"2026-11": new_key(), **old})  # type: ignore[operator]
    endpoint = f"http://127.0.0.1:{port}"
    decoded = readable(show(dev_env, run_id, "--codec-endpoint", endpoint, "--codec-auth", f"Bearer {TOKEN}"))
    assert "slugify" in decoded and "max_length" in decoded and "binary/encrypted" not in decoded

    refused = await asyncio.to_thread(
        subprocess.run,
        [installed_binary("temporal"), "workflow", "show", "--workflow-id", run_id, "-o", "json",
         "--address", dev_env.client.service_client.config.target_host, "--codec-endpoint", endpoint],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "slugify" not in readable(refused.stdout)  # no token, no plaintext
    headers = await asyncio.to_thread(preflight, f"{endpoint}/decode", "http://localhost:8233")
    assert headers["Access-Control-Allow-Origin"] == "http://localhost:8233"
    assert "X-Namespace" in headers["Access-Control-Allow-Headers"]


def preflight(url: str, origin: str) -> dict[str, str]:
    """The Web UI's browser preflight for a decode call."""
    request = urllib.request.Request(url, method="OPTIONS", headers={"Origin": origin})
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(response.headers)
