"""What a sandboxed test run's status is, from how it ended and what its report says. Pure.

A limit the run hit is named (timed out, out of memory, too many processes, too much output) rather
than passed off as an ordinary failure, unless the suite still passed in spite of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.testing import TestStatus

NO_TESTS_EXIT = 5  # pytest's exit code for "no tests collected"


@dataclass(frozen=True)
class RunEnd:
    exit_code: int | None  # None: killed by the sandbox at a time limit
    stopped_for: str | None = None  # "wall_time" / "cpu_time"
    oom_kills: int = 0
    memory_error: bool = False  # a MemoryError under the rlimit fallback (no cgroup)
    process_limit_hits: int = 0
    output_limit_hit: bool = False
    report_found: bool = True
    total: int = 0
    failed: int = 0
    errors: int = 0


def _suite_status(end: RunEnd) -> TestStatus:
    if not end.report_found or end.total == 0 or end.exit_code == NO_TESTS_EXIT:
        return "error"
    if end.failed or end.errors or end.exit_code != 0:
        return "failed"
    return "passed"


def report_status(end: RunEnd) -> TestStatus:
    if end.exit_code is None:
        return "timed_out"
    suite = _suite_status(end)
    if suite == "passed":
        return suite
    if end.output_limit_hit:
        return "too_much_output"
    if end.oom_kills or end.memory_error:
        return "out_of_memory"
    if end.process_limit_hits:
        return "too_many_processes"
    return suite
