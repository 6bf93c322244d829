"""What the demo-run benchmarks share: the dev server tuned as the embedded default, and one timed
demo run (scripted model, real git, real sandbox) with the workers in this process."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from temporalio.client import Client, Interceptor
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from contracts import search
from contracts.run import IssueResult, Outcome
from payloads.converter import data_converter
from starter.sample import create_sample_repo, demo_input
from starter.server import FAST_TRANSFER
from starter.workers import build_workers
from storage.store import ObjectStore
from testkit.tools import installed_binary


async def tuned_dev_server() -> WorkflowEnvironment:
    """The dev server in memory, its transfer queue tuned as the embedded default's."""
    dynamic = [arg for key, value in FAST_TRANSFER.items() for arg in ("--dynamic-config-value", f"{key}={value}")]
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"), search_attributes=search.ALL,
        dev_server_extra_args=dynamic,
    )  # fmt: skip


def bench_settings(work: Path, **env: str) -> Settings:
    """Settings for one run: a data directory under `work` and a task queue of its own."""
    return Settings.model_validate(
        {"FORGEFLOW_DATA_DIR": str(work / "data"), "FORGEFLOW_TASK_QUEUE": f"bench-{uuid.uuid4().hex[:6]}", **env}
    )


async def demo_run(
    target: str,
    work: Path,
    settings: Settings,
    *,
    interceptors: Sequence[Interceptor] = (),
    store: ObjectStore | None = None,
) -> float:
    """Seconds one demo run takes, on a fresh sample repository; it must end approved."""
    client = await Client.connect(target, data_converter=data_converter(settings), interceptors=interceptors)
    repo = create_sample_repo(work / f"textkit-{uuid.uuid4().hex[:6]}")
    workers = build_workers(client, settings, store=store)
    async with workers[0], workers[1]:
        started = time.perf_counter()
        result = await client.execute_workflow(
            "IssueWorkflow", demo_input(repo), id=f"bench-{uuid.uuid4().hex[:6]}", task_queue=settings.task_queue,
            result_type=IssueResult,
        )  # fmt: skip
        seconds = time.perf_counter() - started
    assert result.outcome == Outcome.APPROVED
    return seconds
