"""Shared fixtures: real Temporal servers from the installed packages (nothing is downloaded)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from starter.server import register_search_attributes
from testkit.s3 import S3Server, s3_server
from testkit.tools import git, installed_binary


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `long` go first, one at the head of each xdist worker's share. worksteal hands each
    worker an equal run of the collection, in order, and idle workers steal from the ends of those
    runs, so a long test collected late would end the suite on its own."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    long = [item for item in items if item.get_closest_marker("long")]
    if workers < 2 or not long:
        return
    rest = iter(item for item in items if not item.get_closest_marker("long"))
    shares: list[list[pytest.Item]] = [[] for _ in range(workers)]
    for n, item in enumerate(long):
        shares[n % workers].append(item)
    left = len(items)
    for n, share in enumerate(shares):  # the sizes worksteal's first split gives each worker
        size = left // (workers - n)
        left -= size
        share.extend(next(rest) for _ in range(size - len(share)))
    shares[-1].extend(rest)  # none left, unless there are more long tests than fit in a share
    items[:] = [item for share in shares for item in share]


@pytest_asyncio.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=installed_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    try:
        await register_search_attributes(env.client)
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """A real S3-protocol server (moto) with a bucket and a user allowed to use it, one per test
    process. Set `s3.env` (monkeypatch.setenv) before building a store: obstore reads AWS_* then."""
    with s3_server() as server:
        yield server


@pytest.fixture
def s3_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The S3 server, its user's AWS_* variables set (and stray ones cleared) before a store is built:
    obstore reads them then."""
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    return s3


@pytest.fixture
def sample_repo(tmp_path: Path) -> Path:
    """A small real git repository with one module and one test."""
    repo = tmp_path / "repo"
    (repo / "calc").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "calc" / "__init__.py").write_text("def add(a, b):\n    return a + b\n")
    (repo / "tests" / "test_calc.py").write_text(
        "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
    )
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "initial")
    return repo


_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The process's tracer provider (set once: OpenTelemetry allows one) with an in-memory exporter."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()
