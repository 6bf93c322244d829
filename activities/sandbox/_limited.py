"""Run one command (the bwrap argv) under the sandbox's limits and say how it ended.

Memory and process count are enforced by the run's cgroup where the host delegates one (see
_cgroup), else by rlimits; CPU time by the cgroup's counter (all processes together) and a per
process rlimit; output size by RLIMIT_FSIZE on the log file; wall time here. The whole process tree
is killed on a limit, on cancellation, and before returning, so nothing outlives the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from activities.sandbox import _cgroup
from activities.sandbox._safefs import create_private
from contracts.testing import SandboxLimits

POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Finished:
    """How a limited run ended: its exit code (None when we killed it) and what it used."""

    exit_code: int | None
    stopped_for: str | None  # "wall_time" / "cpu_time" when we killed it at a limit
    usage: _cgroup.Usage
    output_bytes: int
    enforced_by: Literal["cgroup", "rlimit"]


def _preexec(limits: SandboxLimits, group: _cgroup.RunGroup | None) -> Callable[[], None]:
    def apply() -> None:  # in the child, before exec: the whole sandboxed tree inherits these
        per_process_cpu = limits.cpu_seconds + 1
        resource.setrlimit(resource.RLIMIT_CPU, (per_process_cpu, per_process_cpu))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.output_bytes, limits.output_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))  # not for root
        if group is None:  # no cgroup: address space is the only memory bound we have
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        else:
            group.attach()

    return apply


class WeakLimitsError(RuntimeError):
    """No cgroup and running as root: nothing would bound the number of processes."""


async def run_limited(
    argv: list[str],
    log: Path,
    limits: SandboxLimits,
    env: Mapping[str, str],
    *,
    cgroup_root: Path = _cgroup.ROOT,
    allow_weak_limits: bool = False,
) -> Finished:
    """Run argv with stdout+stderr to `log`, a new file in a folder only the worker can reach;
    `env` is the launcher's whole environment (keep it bare).

    Without a cgroup, rlimits are the fallback; but the kernel ignores RLIMIT_NPROC for root, so a
    root worker without a cgroup refuses (WeakLimitsError) unless `allow_weak_limits`.
    """
    group = _cgroup.create(
        uuid.uuid4().hex[:12], memory_bytes=limits.memory_bytes, max_processes=limits.max_processes, root=cgroup_root
    )
    if group is None and os.geteuid() == 0 and not allow_weak_limits:
        raise WeakLimitsError(
            f"no cgroup could be created under {cgroup_root} and the sandbox worker runs as root, so nothing "
            "would limit the tests' processes (a fork bomb would reach the host); delegate a cgroup to the "
            "worker, run it as a non-root user, or set FORGEFLOW_SANDBOX_WEAK_LIMITS=1 to accept the risk"
        )
    try:
        out = create_private(log)  # in a folder no sandbox sees: nothing can stand in for it
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,
                preexec_fn=_preexec(limits, group),
            )
        finally:
            os.close(out)
        try:
            exit_code, stopped_for = await _watch(proc, limits, group)
        except asyncio.CancelledError:
            _kill(proc, group)  # the workflow was cancelled: leave nothing running
            await proc.wait()
            raise
        usage = group.usage() if group is not None else _cgroup.Usage()
    finally:
        if group is not None:
            await asyncio.to_thread(group.remove)
    return Finished(
        exit_code=exit_code,
        stopped_for=stopped_for,
        usage=usage,
        output_bytes=(await asyncio.to_thread(os.stat, log, follow_symlinks=False)).st_size,
        enforced_by="cgroup" if group is not None else "rlimit",
    )


async def _watch(
    proc: asyncio.subprocess.Process, limits: SandboxLimits, group: _cgroup.RunGroup | None
) -> tuple[int | None, str | None]:
    deadline = time.monotonic() + limits.wall_seconds
    while True:
        with contextlib.suppress(TimeoutError):
            code = await asyncio.wait_for(proc.wait(), timeout=POLL_SECONDS)
            return code, None
        stopped_for = None
        if time.monotonic() >= deadline:
            stopped_for = "wall_time"
        elif group is not None and group.usage().cpu_seconds > limits.cpu_seconds:
            stopped_for = "cpu_time"
        if stopped_for is not None:
            _kill(proc, group)
            await proc.wait()
            return None, stopped_for


def _kill(proc: asyncio.subprocess.Process, group: _cgroup.RunGroup | None) -> None:
    # bwrap's --die-with-parent takes the sandbox's PID namespace down with it; the cgroup catches
    # anything that got out of the process group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    if group is not None:
        group.kill()
