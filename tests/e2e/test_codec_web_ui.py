"""The Temporal Web UI, in a real browser, shows an encrypted run in plain text through the codec
server (the server is started with --ui-codec-endpoint, as an operator would)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from contracts import search
from contracts.run import IssueResult, Outcome
from payloads.codec import new_key
from payloads.converter import data_converter
from starter.sample import create_sample_repo, demo_input
from starter.workers import build_workers
from testkit.tools import installed_binary
from tests.e2e.conftest import FAST_TRANSFER, ROOT, wait_until
from tests.e2e.test_codec_e2e import _free_port, _listening

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed"),
]
KEYS = json.dumps({"ui-test": new_key()})


@pytest_asyncio.fixture
async def ui_stack(tmp_path: Path) -> AsyncIterator[tuple[WorkflowEnvironment, str]]:
    """A dev server with its Web UI pointed at a running codec server."""
    codec_port, ui_port = _free_port(), _free_port()
    ui = f"http://127.0.0.1:{ui_port}"
    codec = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-m", "starter", "codec-server", "--port", str(codec_port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "FORGEFLOW_CODEC_KEYS": KEYS, "FORGEFLOW_CODEC_CORS_ORIGINS": json.dumps([ui])},
    )  # fmt: skip
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"),
        search_attributes=search.ALL,
        ui=True,
        ui_port=ui_port,
        dev_server_extra_args=[
            *FAST_TRANSFER, "--ui-codec-endpoint", f"http://127.0.0.1:{codec_port}", "--ui-disable-news-fetch",
        ],
    )  # fmt: skip
    try:
        await asyncio.to_thread(wait_until, lambda: _listening(codec_port), timeout=30, what="the codec server")
        yield env, ui
    finally:
        await env.shutdown()
        codec.terminate()
        codec.wait(timeout=10)


async def test_the_web_ui_reads_an_encrypted_run(ui_stack: tuple[WorkflowEnvironment, str], tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    env, ui = ui_stack
    settings = Settings.model_validate(
        {"FORGEFLOW_CODEC_KEYS": KEYS, "FORGEFLOW_DATA_DIR": str(tmp_path / "data"), "FORGEFLOW_TASK_QUEUE": "ui"}
    )
    client = await Client.connect(env.client.service_client.config.target_host, data_converter=data_converter(settings))
    repo = create_sample_repo(tmp_path / "textkit")
    run_id = f"ui-{uuid.uuid4().hex[:8]}"
    workers = build_workers(client, settings)
    async with workers[0], workers[1]:
        result = await client.execute_workflow(
            "IssueWorkflow", demo_input(repo), id=run_id, task_queue="ui", result_type=IssueResult
        )
    assert result.outcome == Outcome.APPROVED
    raw = await env.client.get_workflow_handle(run_id).fetch_history()  # no codec: what the server keeps
    started = raw.events[0].workflow_execution_started_event_attributes.input.payloads[0]
    assert started.metadata["encoding"] == b"binary/encrypted" and b"slugify" not in started.data

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=shutil.which("chromium"),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = await browser.new_page()
        await page.goto(f"{ui}/namespaces/default/workflows/{run_id}", wait_until="networkidle")
        await page.get_by_text("Let slugify cut long slugs").first.wait_for(timeout=30_000)  # the decoded input
        await page.screenshot(path=str(tmp_path / "ui.png"))
        await browser.close()
