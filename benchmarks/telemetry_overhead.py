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
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from benchmarks._demo import bench_settings, demo_run, tuned_dev_server
from payloads.codec import new_key
from telemetry.logs import configure_logging
from telemetry.setup import tracing_interceptors


async def main() -> None:
    configure_logging(json=True, level=logging.WARNING)
    env = await tuned_dev_server()
    target = env.client.service_client.config.target_host
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            await demo_run(target, work, bench_settings(work))  # warm-up
            plain = await demo_run(target, work, bench_settings(work))
            keys = json.dumps({"bench": new_key()})
            codec = await demo_run(target, work, bench_settings(work, FORGEFLOW_CODEC_KEYS=keys))
            provider = TracerProvider()
            exporter = InMemorySpanExporter()
            provider.add_span_processor(BatchSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
            traced = await demo_run(target, work, bench_settings(work), interceptors=tracing_interceptors())
            provider.force_flush()
    finally:
        await env.shutdown()
    print(f"demo run, plain:          {plain:.2f} s")
    print(f"demo run, codec on:       {codec:.2f} s  ratio {codec / plain:.2f}x")
    spans = len(exporter.get_finished_spans())
    print(f"demo run, tracing on:     {traced:.2f} s  ratio {traced / plain:.2f}x ({spans} spans)")


if __name__ == "__main__":
    asyncio.run(main())
