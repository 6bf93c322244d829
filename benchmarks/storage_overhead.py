"""What the object store costs a run: the demo run (scripted model, real git, real sandbox) on the dev
server, its store in memory (the floor: no I/O at all), on the local directory (the embedded
default) and on S3 (moto's server on loopback); prints each median time, its ratio to the floor,
and the requests the run made of its store.

    python -m benchmarks.storage_overhead [--rounds N]

Rounds alternate the stores after one warm-up run, so drift on the machine falls on all of them.
The requests are the activities' (transcripts, file contents, trees for the sandbox, research);
large payloads have their own store (FORGEFLOW_PAYLOAD_THRESHOLD_KB) and the demo makes none.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from benchmarks._demo import bench_settings, demo_run, tuned_dev_server
from storage.store import ObjectStore
from telemetry.logs import configure_logging
from testkit.s3 import s3_server


async def one_run(target: str, work: Path, store: ObjectStore) -> tuple[float, Counter[str]]:
    """One demo run with its activities on `store`; its seconds and the requests it made of the store."""
    return await demo_run(target, work, bench_settings(work), store=store), store.requests


async def main(rounds: int) -> None:
    configure_logging(json=True, level=logging.WARNING)
    env = await tuned_dev_server()
    target = env.client.service_client.config.target_host
    times: dict[str, list[float]] = {"memory": [], "local": [], "s3": []}
    requests: dict[str, Counter[str]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp, s3_server() as s3:
            work = Path(tmp)
            os.environ.update(s3.env)  # obstore reads the AWS variables when a store is built
            stores: dict[str, Callable[[], ObjectStore]] = {
                "memory": ObjectStore.in_memory,
                "local": lambda: ObjectStore((work / f"store-{uuid.uuid4().hex[:6]}").as_uri()),
                "s3": lambda: ObjectStore(s3.url(f"bench-{uuid.uuid4().hex[:6]}")),
            }
            await one_run(target, work, stores["local"]())  # warm-up: imports, the sandbox's first start
            for _ in range(rounds):
                for name, make in stores.items():
                    seconds, asked = await one_run(target, work, make())
                    times[name].append(seconds)
                    requests[name] = asked
    finally:
        await env.shutdown()
    floor = statistics.median(times["memory"])
    print(f"demo run, median of {rounds} (each store fresh):")
    for name, label in [("memory", "in memory (floor)"), ("local", "local directory"), ("s3", "S3 on loopback")]:
        median = statistics.median(times[name])
        made = ", ".join(f"{op} {n}" for op, n in sorted(requests[name].items()))
        each = " ".join(f"{t:.2f}" for t in times[name])
        print(f"  {label:20} {median:6.2f} s  ratio {median / floor:.2f}x  ({each})  requests: {made}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args().rounds))
