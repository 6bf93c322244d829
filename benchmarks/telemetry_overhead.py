"""What tracing and the history codec cost on a run: the demo run (scripted model, real git, real
sandbox) on the dev server, plain, with the codec, and with tracing; prints each time and its ratio
to the plain run (one run each, after one warm-up run).

    python -m benchmarks.telemetry_overhead
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import time
import uuid
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client, Interceptor
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from contracts import search
from contracts.run import IssueResult, Outcome
from payloads.codec import new_key
from payloads.converter import data_converter
from starter.sample import create_sample_repo, demo_input
from starter.server import FAST_TRANSFER
from starter.workers import build_workers
from telemetry.logs import configure_logging
from telemetry.setup import tracing_interceptors
from testkit.tools import installed_binary


async def one_run(target: str, work: Path, settings: Settings, interceptors: list[Interceptor]) -> float:
    queue = settings.task_queue
    client = await Client.connect(target, data_converter=data_converter(settings), interceptors=interceptors)
    repo = create_sample_repo(work / f"textkit-{uuid.uuid4().hex[:6]}")
    workers = build_workers(client, settings)
    async with workers[0], workers[1]:
        started = time.perf_counter()
        result = await client.execute_workflow(
            "IssueWorkflow", demo_input(repo), id=f"bench-{uuid.uuid4().hex[:6]}", task_queue=queue,
            result_type=IssueResult,
        )  # fmt: skip
        seconds = time.perf_counter() - started
    assert result.outcome == Outcome.APPROVED
    return seconds


def settings_for(work: Path, **env: str) -> Settings:
    return Settings.model_validate(
        {"FORGEFLOW_DATA_DIR": str(work / "data"), "FORGEFLOW_TASK_QUEUE": f"bench-{uuid.uuid4().hex[:6]}", **env}
    )


async def main() -> None:
    configure_logging(json=True, level=logging.WARNING)
    dynamic = [arg for key, value in FAST_TRANSFER.items() for arg in ("--dynamic-config-value", f"{key}={value}")]
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"), search_attributes=search.ALL,
        dev_server_extra_args=dynamic,
    )  # fmt: skip
    target = env.client.service_client.config.target_host
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            await one_run(target, work, settings_for(work), [])  # warm-up
            plain = await one_run(target, work, settings_for(work), [])
            keys = json.dumps({"bench": new_key()})
            codec = await one_run(target, work, settings_for(work, FORGEFLOW_CODEC_KEYS=keys), [])
            provider = TracerProvider()
            exporter = InMemorySpanExporter()
            provider.add_span_processor(BatchSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
            traced = await one_run(target, work, settings_for(work), tracing_interceptors())
            provider.force_flush()
    finally:
        await env.shutdown()
    print(f"demo run, plain:          {plain:.2f} s")
    print(f"demo run, codec on:       {codec:.2f} s  ratio {codec / plain:.2f}x")
    spans = len(exporter.get_finished_spans())
    print(f"demo run, tracing on:     {traced:.2f} s  ratio {traced / plain:.2f}x ({spans} spans)")


if __name__ == "__main__":
    asyncio.run(main())
