"""What the sandbox costs: one suite run directly and through `run_tests`, as a ratio.

Both run the same pytest command with the same JUnit report on the same commit. The sandboxed run
adds what a real run pays: `git archive` of the commit, bubblewrap's namespaces and mounts, the
run's cgroup, and parsing the report. Prints both times and their ratio (one run each, after one
warm-up of each so the imports are in the page cache).

    python -m benchmarks.sandbox_overhead [tests]
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from temporalio.testing import ActivityEnvironment

from activities.blobstore import BlobStore
from activities.codehost._snapshot import publish_tree
from activities.codehost.local import LocalGitHost
from activities.sandbox.run_tests import SandboxActivities
from activities.trees import TreeArchives
from config.settings import Settings
from contracts.repo import parse_repo
from contracts.testing import RunTestsInput, TestReport
from starter.workers import object_store, sandbox_config

TEST_MODULE = """
import json
import pytest


@pytest.mark.parametrize("n", range({count}))
def test_round_trip(n):
    data = {{"n": n, "items": list(range(n % 50))}}
    assert json.loads(json.dumps(data)) == data
"""


def make_repo(root: Path, tests: int) -> tuple[Path, str]:
    repo = root / "suite"
    (repo / "tests").mkdir(parents=True)
    (repo / "tests" / "test_bench.py").write_text(TEST_MODULE.format(count=tests))
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "bench"],
    ):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    return repo, sha.stdout.strip()


def direct(repo: Path, out: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={out}"],
        cwd=repo,
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - started


async def sandboxed(repo: Path, sha: str, settings: Settings) -> tuple[float, TestReport]:
    store = object_store(settings)  # the code host uploads the tree when it lands the commit: not timed here
    tree = await publish_tree(LocalGitHost(BlobStore(store)), TreeArchives(store), parse_repo(str(repo)), sha)
    request = RunTestsInput(tree=tree, commit_sha=sha, test_command=["python", "-m", "pytest", "-q"])
    started = time.perf_counter()
    report: TestReport = await ActivityEnvironment().run(SandboxActivities(sandbox_config(settings)).run_tests, request)
    return time.perf_counter() - started, report


async def main(tests: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo, sha = make_repo(Path(tmp), tests)
        settings = Settings.model_validate({"FORGEFLOW_DATA_DIR": str(Path(tmp) / "data")})
        junit = Path(tmp) / "direct.xml"
        direct(repo, junit)
        await sandboxed(repo, sha, settings)
        plain = direct(repo, junit)
        boxed, report = await sandboxed(repo, sha, settings)
    assert report.status == "passed" and report.passed == tests, report.output_tail
    print(f"{tests} tests, pytest directly: {plain:.2f} s")
    print(f"{tests} tests, sandboxed run_tests: {boxed:.2f} s (limits by {report.limits_enforced_by})")
    print(f"sandboxed / direct: {boxed / plain:.2f}x")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
