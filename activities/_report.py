"""A sandboxed run's TestReport, from how the run ended and the runner's own report file.

Counts come from the runner's machine-readable report only (JUnit XML, or jest's JSON), never from
console text; the status from policy.test_status; the first line of the output excerpt says which
limit stopped the run, if one did.
"""

from __future__ import annotations

import signal
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from activities import _junit
from activities._bwrap import WORKSPACE
from activities._limited import Finished
from activities._runners import RunnerPlan
from contracts.testing import InstallReport, SandboxLimits, TestReport, TestStatus
from policy.test_status import RunEnd, test_status

OUTPUT_TAIL = 20_000
KILLED_BY_FILE_SIZE = {128 + signal.SIGXFSZ, -signal.SIGXFSZ}  # the shell's convention, and Popen's


@dataclass(frozen=True)
class RunFiles:
    """Where one run's files are on the worker: the workspace copy and the report directory."""

    workspace: Path
    out_dir: Path


def _namer(runner: str, workspace: Path) -> _junit.Namer:
    def is_file(path: str) -> bool:
        return (workspace / path).is_file()

    if runner == "node":
        return _junit.node_namer
    if runner == "vitest":
        return _junit.vitest_namer
    if runner == "unittest":
        return _junit.unittest_namer(is_file)
    return _junit.pytest_namer(is_file)


def read_counts(plan: RunnerPlan, files: RunFiles) -> _junit.JUnitCounts | None:
    """The runner's own report, parsed; None if it wrote none (or one that can't be read)."""
    jest, junit = files.out_dir / "jest.json", files.out_dir / "junit.xml"
    try:
        if plan.runner == "jest" and jest.exists():
            return _junit.parse_jest(jest.read_text(errors="replace"), WORKSPACE)
        if junit.exists():
            return _junit.parse_junit(junit.read_text(errors="replace"), _namer(plan.runner, files.workspace))
    except (ValueError, ET.ParseError):
        return None
    return None


def tail(log: Path, limit: int = OUTPUT_TAIL) -> str:
    """The last `limit` bytes of a step's console output (all of it if short)."""
    if not log.exists():
        return ""
    size = log.stat().st_size
    with log.open("rb") as f:
        f.seek(max(0, size - limit))
        text = f.read().decode("utf-8", errors="replace")
    return text if size <= limit else "…" + text


def why(status: TestStatus, end: RunEnd, limits: SandboxLimits, unsandboxed: bool) -> str:
    """A first line saying which limit stopped the run, if one did."""
    lines = ["UNSANDBOXED RUN (operator allowed)"] if unsandboxed else []
    if status == "timed_out":
        if end.stopped_for == "cpu_time":
            lines.append(f"killed: used more than {limits.cpu_seconds} s of CPU time")
        else:
            lines.append(f"killed after the {limits.wall_seconds} s timeout")
    elif status == "out_of_memory":
        lines.append(f"ran out of memory (limit {limits.memory_bytes // 1024**2} MiB)")
    elif status == "too_many_processes":
        lines.append(f"hit the limit of {limits.max_processes} processes")
    elif status == "too_much_output":
        lines.append(f"stopped at the output limit of {limits.output_bytes // 1024**2} MiB")
    elif not end.report_found:
        lines.append(f"the runner wrote no report to count from (exit code {end.exit_code})")
    return "".join(f"{line}\n" for line in lines)


def error_report(
    commit_sha: str, limits: SandboxLimits, reason: str, install: InstallReport | None = None
) -> TestReport:
    """No test ran: a bad .forgeflow.yml, or a failed install step."""
    return TestReport(
        commit_sha=commit_sha, command=[], status="error", output_tail=reason, limits=limits, install=install
    )


def build_report(
    commit_sha: str,
    plan: RunnerPlan,
    finished: Finished,
    limits: SandboxLimits,
    files: RunFiles,
    *,
    seconds: float,
    install: InstallReport | None,
    unsandboxed: bool,
) -> TestReport:
    counts = read_counts(plan, files)
    console = tail(files.out_dir / "output.log")
    end = RunEnd(
        exit_code=finished.exit_code,
        stopped_for=finished.stopped_for,
        oom_kills=finished.usage.oom_kills,
        memory_error=finished.enforced_by == "rlimit" and "MemoryError" in console,
        process_limit_hits=finished.usage.process_limit_hits,
        output_limit_hit=finished.output_bytes >= limits.output_bytes or finished.exit_code in KILLED_BY_FILE_SIZE,
        report_found=counts is not None,
        total=counts.total if counts else 0,
        failed=counts.failed if counts else 0,
        errors=counts.errors if counts else 0,
    )
    status = test_status(end)
    coverage = files.out_dir / "coverage.xml"
    return TestReport(
        commit_sha=commit_sha,
        command=plan.command,
        runner=plan.runner,
        status=status,
        exit_code=finished.exit_code,
        duration_seconds=round(seconds, 3),
        output_tail=why(status, end, limits, unsandboxed) + console,
        coverage_percent=_junit.parse_coverage(coverage.read_text()) if coverage.exists() else None,
        install=install,
        limits=limits,
        limits_enforced_by=finished.enforced_by,
        cpu_seconds=round(finished.usage.cpu_seconds, 3) if finished.enforced_by == "cgroup" else None,
        peak_memory_bytes=finished.usage.peak_memory_bytes,
        total=counts.total if counts else 0,
        passed=counts.passed if counts else 0,
        failed=counts.failed if counts else 0,
        errors=counts.errors if counts else 0,
        skipped=counts.skipped if counts else 0,
        failures=counts.failures if counts else [],
    )
