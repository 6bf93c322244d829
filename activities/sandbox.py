"""The `run_tests` activity (task queue forgeflow-sandbox): a commit's tests under bubblewrap.

The commit is exported with `git archive` into a fresh directory (the user's work tree is never
touched), the runner writes JUnit XML, and the report is parsed from that file — never guessed
from console text. The sandbox has no network, no worker environment, and limits on time,
memory, processes and output.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities._bwrap import COVERAGE, JUNIT, OUT, WORKSPACE, bwrap_argv
from activities._commit_cache import mapping_ref
from activities._junit import parse_coverage, parse_junit
from activities.blobstore import BlobStore
from config.settings import Settings
from contracts.testing import RunTestsInput, TestReport
from policy.paths import repo_path

MEMORY_LIMIT = 2 * 1024**3
MAX_PROCESSES = 256
MAX_OUTPUT_FILE = 64 * 1024**2
OUTPUT_TAIL = 20_000
HEARTBEAT_EVERY = 5.0
_NO_TESTS = 5  # pytest's exit code for "no tests collected"


def default_command() -> list[str]:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={JUNIT}"]
    if importlib.util.find_spec("pytest_cov") is not None:
        command += [f"--cov={WORKSPACE}", f"--cov-report=xml:{COVERAGE}"]
    return command


def _limits(cpu_seconds: int) -> None:
    """Runs in the child before exec: limits that the sandboxed tree inherits."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_NPROC, (MAX_PROCESSES, MAX_PROCESSES))
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_OUTPUT_FILE, MAX_OUTPUT_FILE))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class SandboxActivities:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._blobs = BlobStore(settings.blob_dir)

    @activity.defn(name="run_tests")
    async def run_tests(self, req: RunTestsInput) -> TestReport:
        with tempfile.TemporaryDirectory(prefix="forgeflow-test-") as tmp:
            workspace, out_dir = Path(tmp) / "workspace", Path(tmp) / "out"
            workspace.mkdir()
            out_dir.mkdir()
            await _export(req.repo_path, req.commit_sha, workspace)
            _apply_overlay(workspace, req.overlay, self._blobs)
            command = req.test_command or default_command()
            argv, note = self._argv(workspace, out_dir, command)
            started = time.monotonic()
            exit_code = await _run(argv, out_dir / "output.log", req.timeout_seconds)
            return _report(req, command, exit_code, workspace, out_dir, time.monotonic() - started, note)

    def _argv(self, workspace: Path, out_dir: Path, command: list[str]) -> tuple[list[str], str]:
        bwrap = shutil.which("bwrap")
        if bwrap is not None:
            prefixes = [sys.base_prefix, sys.prefix]
            return bwrap_argv(
                bwrap, workspace=workspace, out_dir=out_dir, python_prefixes=prefixes, command=command
            ), ""
        if not self._settings.allow_unsandboxed_tests:
            raise ApplicationError(
                "bubblewrap (bwrap) is not installed on this sandbox worker, so tests cannot run isolated; "
                "install Debian's bubblewrap package (or set FORGEFLOW_ALLOW_UNSANDBOXED=1 to accept the risk)",
                type="SandboxUnavailable",
                non_retryable=True,
            )
        local = [arg.replace(OUT, str(out_dir)) for arg in command]
        return ["env", "-C", str(workspace), f"PYTHONPATH={workspace}", *local], "UNSANDBOXED RUN (operator allowed)\n"


def _apply_overlay(workspace: Path, overlay: dict[str, str | None], blobs: BlobStore) -> None:
    """Lay the agent's uncommitted files over the exported commit (paths were checked when written)."""
    for raw, key in overlay.items():
        target = workspace / repo_path(raw)
        if key is None:
            target.unlink(missing_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blobs.get(key))


async def _export(repo: str, sha: str, into: Path) -> None:
    data, err, code = await _archive(repo, f"{sha}^{{commit}}")
    if code != 0:  # a remote commit: the worker's cache maps it to a local one
        data, _, code = await _archive(repo, mapping_ref(sha))
    if code != 0:
        raise ApplicationError(
            f"commit {sha} not found in {repo}: {err.decode(errors='replace').strip()}",
            type="CommitNotFound",
            non_retryable=True,
        )
    untar = await asyncio.create_subprocess_exec("tar", "-x", "-C", str(into), stdin=subprocess.PIPE)
    await untar.communicate(data)
    if untar.returncode != 0:
        raise ApplicationError(f"could not unpack commit {sha}", type="ExportFailed")


async def _archive(repo: str, ref: str) -> tuple[bytes, bytes, int | None]:
    proc = await asyncio.create_subprocess_exec(
        "git", "-C", repo, "archive", "--format=tar", ref, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await proc.communicate()
    return out, err, proc.returncode


async def _run(argv: list[str], log: Path, limit_seconds: int) -> int | None:
    """The exit code, or None when the run was killed at its timeout."""
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: _limits(limit_seconds + 5),
        )
    deadline = time.monotonic() + limit_seconds
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _kill(proc)
                await proc.wait()
                return None
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(proc.wait(), timeout=min(HEARTBEAT_EVERY, remaining))
            if activity.in_activity():
                activity.heartbeat()
    except asyncio.CancelledError:
        _kill(proc)  # the workflow was cancelled: leave nothing running
        await proc.wait()
        raise


def _kill(proc: asyncio.subprocess.Process) -> None:
    # bwrap's --die-with-parent takes the whole sandboxed PID namespace down with it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _tail(log: Path) -> str:
    data = log.read_bytes() if log.exists() else b""
    text = data[-OUTPUT_TAIL:].decode("utf-8", errors="replace")
    return text if len(data) <= OUTPUT_TAIL else "…" + text


def _report(
    req: RunTestsInput,
    command: list[str],
    exit_code: int | None,
    workspace: Path,
    out_dir: Path,
    seconds: float,
    note: str,
) -> TestReport:
    base = {
        "commit_sha": req.commit_sha,
        "command": command,
        "exit_code": exit_code,
        "duration_seconds": round(seconds, 3),
        "output_tail": note + _tail(out_dir / "output.log"),
    }
    if exit_code is None:
        base["output_tail"] = f"killed after the {req.timeout_seconds} s timeout\n{base['output_tail']}"
        return TestReport(status="timed_out", **base)
    junit = out_dir / "junit.xml"
    if not junit.exists():
        base["output_tail"] = f"the runner wrote no JUnit report (exit code {exit_code})\n{base['output_tail']}"
        return TestReport(status="error", **base)
    counts = parse_junit(junit.read_text(encoding="utf-8", errors="replace"), lambda p: (workspace / p).is_file())
    if counts.total == 0 or exit_code == _NO_TESTS:
        status = "error"
    elif counts.failed or counts.errors or exit_code != 0:
        status = "failed"
    else:
        status = "passed"
    coverage = out_dir / "coverage.xml"
    return TestReport(
        status=status,
        coverage_percent=parse_coverage(coverage.read_text()) if coverage.exists() else None,
        total=counts.total,
        passed=counts.passed,
        failed=counts.failed,
        errors=counts.errors,
        skipped=counts.skipped,
        failures=counts.failures,
        **base,
    )
