"""A sandboxed run's TestReport, from how the run ended and the runner's own report file.

Counts come from the runner's machine-readable report only (JUnit XML, or jest's JSON), never from
console text; the status from policy.report_status; the first line of the output excerpt says which
limit stopped the run, if one did.

The report folder was writable by the sandbox, so its files are read through activities.sandbox._safefs:
no link is followed, only regular files are read, and no more than the run's output limit. The
console log lives in a folder the sandbox never sees.
"""

from __future__ import annotations

import os
import signal
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from defusedxml import DefusedXmlException

from activities.sandbox import _junit, _safefs
from activities.sandbox._layout import WORKSPACE
from activities.sandbox._limited import Finished
from activities.sandbox._runners import RunnerPlan
from contracts.testing import InstallReport, SandboxLimits, TestReport, TestStatus
from policy.report_status import RunEnd, report_status

OUTPUT_TAIL = 20_000
KILLED_BY_FILE_SIZE = {128 + signal.SIGXFSZ, -signal.SIGXFSZ}  # the shell's convention, and Popen's


@dataclass(frozen=True)
class RunFiles:
    """One run's files on the worker: the files of the workspace before anything ran (test ids name
    them), the report folder the sandbox wrote, and the console log only the worker can reach."""

    known_files: frozenset[str]
    out_dir: Path
    log: Path
    watch: frozenset[str] = frozenset()  # tests whose outcome the report gives one by one


def _namer(runner: str, known_files: frozenset[str]) -> _junit.Namer:
    def is_file(path: str) -> bool:
        return path in known_files

    if runner == "node":
        return _junit.node_namer
    if runner == "vitest":
        return _junit.vitest_namer
    if runner == "unittest":
        return _junit.unittest_namer(is_file)
    return _junit.pytest_namer(is_file)


def read_counts(plan: RunnerPlan, files: RunFiles, limit: int) -> _junit.JUnitCounts | None:
    """The runner's own report, parsed; None if it wrote none, or one that can't be read (a link, not
    a regular file, larger than `limit`, malformed, or nested past what a parser should follow)."""
    with _safefs.root(files.out_dir) as out:
        jest = _safefs.read_file(out, "jest.json", limit) if plan.runner == "jest" else None
        junit = None if jest is not None else _safefs.read_file(out, "junit.xml", limit)
    found = jest or junit
    if found is None or found.truncated:
        return None
    try:
        if jest is not None:
            return _junit.parse_jest(jest.data, WORKSPACE, files.watch)
        return _junit.parse_junit(found.data, _namer(plan.runner, files.known_files), files.watch)
    except (ValueError, ET.ParseError, DefusedXmlException, RecursionError):
        return None


def read_coverage(files: RunFiles, limit: int) -> float | None:
    with _safefs.root(files.out_dir) as out:
        found = _safefs.read_file(out, "coverage.xml", limit)
    return None if found is None or found.truncated else _junit.parse_coverage(found.data)


def tail(log: Path, limit: int = OUTPUT_TAIL) -> str:
    """The last `limit` bytes of a step's console output (all of it if short), saying what was cut."""
    try:
        fd = os.open(log, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return ""
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(fd).st_size
        f.seek(max(0, size - limit))
        text = f.read(limit).decode("utf-8", errors="replace")
    return text if size <= limit else f"[{size - limit} bytes of earlier output not shown]\n…{text}"


def first_line(log: Path, limit: int = 4096) -> str:
    """The first line of a step's console output (at most `limit` bytes of it); "" if there is none."""
    try:
        fd = os.open(log, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return ""
    with os.fdopen(fd, "rb") as f:
        return f.read(limit).decode("utf-8", errors="replace").partition("\n")[0]


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
    counts = read_counts(plan, files, limits.output_bytes)
    console = tail(files.log)
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
    status = report_status(end)
    return TestReport(
        commit_sha=commit_sha,
        command=plan.command,
        runner=plan.runner,
        status=status,
        exit_code=finished.exit_code,
        duration_seconds=round(seconds, 3),
        output_tail=why(status, end, limits, unsandboxed) + console,
        coverage_percent=read_coverage(files, limits.output_bytes),
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
        failures_omitted=counts.failures_omitted if counts else 0,
        outcomes={test: (counts.outcomes if counts else {}).get(test, "missing") for test in sorted(files.watch)},
    )
