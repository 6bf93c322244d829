"""What an agent reads after a sandboxed command: how it ended, its output's head and tail, and what
it changed. Pure: values in, text out.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Literal

from contracts.commands import CommandStatus, NotKept
from contracts.testing import SandboxLimits

LISTED = 20  # changed files listed by name; more are counted
LISTED_PER_REASON = 5  # files named per reason they were not kept


@dataclass(frozen=True)
class Change:
    """A file the command created (A), modified (M) or deleted (D), and what became of it."""

    path: str
    kind: Literal["A", "M", "D"]
    data: bytes | None = None  # the new contents; None for a deletion
    key: str | None = None  # the contents' blob key, once stored

    def with_key(self, key: str | None) -> Change:
        return replace(self, key=key, data=None)


@dataclass(frozen=True)
class CommandEnd:
    """How the sandboxed command ended."""

    exit_code: int | None  # None: the sandbox killed it at a time limit
    limits: SandboxLimits
    stopped_for: str | None = None  # "wall_time" / "cpu_time"
    oom_kills: int = 0
    process_limit_hits: int = 0
    output_limit_hit: bool = False


def command_status(end: CommandEnd) -> CommandStatus:
    """A limit that stopped the command is named; a command that exited on its own has "exited",
    whatever its exit code."""
    if end.exit_code is None:
        return "timed_out"
    if end.exit_code != 0:
        if end.output_limit_hit:
            return "too_much_output"
        if end.oom_kills:
            return "out_of_memory"
        if end.process_limit_hits:
            return "too_many_processes"
    return "exited"


def _how_it_ended(status: CommandStatus, end: CommandEnd, seconds: float) -> str:
    limits = end.limits
    if status == "timed_out":
        killed = "it and every process it started were killed"
        if end.stopped_for == "cpu_time":
            return f"stopped: used more than {limits.cpu_seconds} s of CPU time; {killed}"
        return f"stopped: still running after the {limits.wall_seconds} s timeout; {killed}"
    code = f"exit code {end.exit_code} after {seconds:.2f} s"
    if status == "too_much_output":
        return f"{code}: stopped at the output limit of {limits.output_bytes // 1024**2} MiB"
    if status == "out_of_memory":
        return f"{code}: ran out of memory (limit {limits.memory_bytes // 1024**2} MiB)"
    if status == "too_many_processes":
        return f"{code}: hit the limit of {limits.max_processes} processes"
    return code


def _output(head: str, tail: str, cut: int) -> list[str]:
    if not head and not tail:
        return ["(no output)"]
    if cut <= 0:
        return [(head + tail).rstrip("\n")]
    return [head.rstrip("\n"), f"[… {cut} bytes of output cut here …]", tail.rstrip("\n")]


def _changes(changes: list[Change], removed: list[str], keep: bool) -> list[str]:
    count = len(changes) + len(removed)
    if not count:
        return []
    if not keep:
        return ["", f"This role runs commands read-only: the {count} file(s) the command changed were discarded."]
    lines = ["", f"The command changed {count} file(s); they are now part of your edits:"]
    listed = [f"  {c.kind} {c.path}" for c in changes] + [f"  D {path} (a file you had created)" for path in removed]
    lines += listed[:LISTED]
    if len(listed) > LISTED:
        lines.append(f"  … and {len(listed) - LISTED} more (view_diff shows them all)")
    return lines


def _not_kept(not_kept: list[NotKept]) -> list[str]:
    if not not_kept:
        return []
    by_reason: dict[str, list[str]] = defaultdict(list)
    for item in not_kept:
        by_reason[item.why].append(item.path)
    lines = ["", "Changed but not kept:"]
    for why, paths in by_reason.items():
        more = f", … ({len(paths)} in all)" if len(paths) > LISTED_PER_REASON else ""
        named = ", ".join(paths[:LISTED_PER_REASON]) + more
        lines.append(f"  {named}: {why}")
    return lines


def command_preview(status: CommandStatus, end: CommandEnd, seconds: float, changed: int) -> str:
    """One line for people reading the run's history."""
    return _how_it_ended(status, end, seconds) + (f"; {changed} file(s) changed" if changed else "")


def command_text(
    *,
    command: str,
    status: CommandStatus,
    end: CommandEnd,
    seconds: float,
    head: str,
    tail: str,
    cut: int,
    changes: list[Change],
    removed: list[str],
    not_kept: list[NotKept],
    keep: bool,
    unsandboxed: bool = False,
) -> str:
    """The answer the agent reads: the command, how it ended, its output, and what it changed."""
    lines = [f"$ {command}", _how_it_ended(status, end, seconds)]
    if unsandboxed:
        lines.append("UNSANDBOXED RUN (operator allowed)")
    lines += _output(head, tail, cut)
    lines += _changes(changes, removed, keep)
    lines += _not_kept(not_kept)
    return "\n".join(lines)
