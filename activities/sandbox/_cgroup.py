"""One control group per sandboxed run: the kernel enforces memory and process limits, counts
what the run used, and lets us kill every process the run started, wherever it hid.

cgroup v1 (a directory per controller: memory, pids, cpuacct) and v2 (one directory) are both
handled; the group is made under the worker's own cgroup so a container's limits still apply.
Where neither can be written (no delegation), `create` returns None and the sandbox falls back to
rlimits, saying so in the report.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "pids", "cpuacct")


@dataclass(frozen=True)
class Usage:
    oom_kills: int = 0
    process_limit_hits: int = 0
    cpu_seconds: float = 0.0
    peak_memory_bytes: int | None = None


def _own_paths() -> dict[str, str]:
    """controller name → this process's cgroup path ("" for the v2 unified hierarchy)."""
    paths: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        for name in names.split(",") if names else [""]:
            paths[name] = path
    return paths


def _read_int(path: Path, key: str | None = None) -> int:
    """A counter file's value: the whole file, or the `key value` line named key (0 if absent)."""
    try:
        text = path.read_text()
    except OSError:
        return 0
    if key is None:
        return int(text.strip() or 0)
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


class RunGroup:
    """The cgroup of one run: `attach` in the child before exec; `usage`, `kill`, `remove` after."""

    def __init__(self, dirs: dict[str, Path], v2: bool) -> None:
        self.dirs, self.v2 = dirs, v2

    def attach(self) -> None:
        """Move the calling process (the child, before exec) into the group; its descendants follow."""
        for directory in dict.fromkeys(self.dirs.values()):
            (directory / "cgroup.procs").write_text(str(os.getpid()))

    def usage(self) -> Usage:
        if self.v2:
            d = self.dirs["memory"]
            peak = _read_int(d / "memory.peak") if (d / "memory.peak").exists() else None
            return Usage(
                oom_kills=_read_int(d / "memory.events", "oom_kill"),
                process_limit_hits=_read_int(d / "pids.events", "max"),
                cpu_seconds=_read_int(d / "cpu.stat", "usage_usec") / 1e6,
                peak_memory_bytes=peak,
            )
        memory = self.dirs["memory"]
        return Usage(
            oom_kills=_read_int(memory / "memory.oom_control", "oom_kill"),
            process_limit_hits=_read_int(self.dirs["pids"] / "pids.events", "max"),
            cpu_seconds=_read_int(self.dirs["cpuacct"] / "cpuacct.usage") / 1e9,
            peak_memory_bytes=_read_int(memory / "memory.max_usage_in_bytes"),
        )

    def pids(self) -> set[int]:
        found: set[int] = set()
        for directory in self.dirs.values():
            with contextlib.suppress(OSError):
                found |= {int(p) for p in (directory / "cgroup.procs").read_text().split()}
        return found

    def kill(self, wait_seconds: float = 10.0) -> bool:
        """SIGKILL every process in the group until it is empty; False if some survived the wait."""
        deadline = time.monotonic() + wait_seconds
        while pids := self.pids():
            if time.monotonic() > deadline:
                return False
            if self.v2 and (self.dirs["memory"] / "cgroup.kill").exists():
                (self.dirs["memory"] / "cgroup.kill").write_text("1")
            else:  # v1: a forking process can outrun one pass, so repeat until none is left
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
        return True

    def remove(self) -> None:
        self.kill()
        for directory in dict.fromkeys(self.dirs.values()):
            with contextlib.suppress(OSError):
                directory.rmdir()


def create(name: str, *, memory_bytes: int, max_processes: int, root: Path = ROOT) -> RunGroup | None:
    """A new group `forgeflow-<worker pid>-<name>` with the limits set, or None where cgroups can't be
    used. Empty groups a killed sandbox worker left beside it are removed first."""
    name = f"{os.getpid()}-{name}"
    try:
        own = _own_paths()
        if (root / "memory").is_dir():  # v1 (or hybrid): the memory controller has its own hierarchy
            return _create_v1(name, own, memory_bytes, max_processes, root)
        if (root / "cgroup.controllers").exists():
            return _create_v2(name, own.get("", "/"), memory_bytes, max_processes, root)
    except OSError:
        return None
    return None


def _create_v1(name: str, own: dict[str, str], memory_bytes: int, max_processes: int, root: Path) -> RunGroup:
    dirs: dict[str, Path] = {}
    try:
        for controller in V1_CONTROLLERS:
            parent = root / controller / own.get(controller, "/").lstrip("/")
            sweep(parent)
            directory = parent / f"forgeflow-{name}"
            directory.mkdir()
            dirs[controller] = directory
        (dirs["memory"] / "memory.limit_in_bytes").write_text(str(memory_bytes))
        with contextlib.suppress(OSError):  # no swap either, where swap accounting is on
            (dirs["memory"] / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
        (dirs["pids"] / "pids.max").write_text(str(max_processes))
    except OSError:
        RunGroup(dirs, v2=False).remove()
        raise
    return RunGroup(dirs, v2=False)


def _create_v2(name: str, own: str, memory_bytes: int, max_processes: int, root: Path) -> RunGroup:
    parent = root / own.lstrip("/")
    enabled = (parent / "cgroup.subtree_control").read_text().split()
    if not {"memory", "pids"} <= set(enabled):
        (parent / "cgroup.subtree_control").write_text("+memory +pids +cpu")  # needs a delegated parent
    sweep(parent)
    directory = parent / f"forgeflow-{name}"
    directory.mkdir()
    group = RunGroup(dict.fromkeys(V1_CONTROLLERS, directory), v2=True)
    try:
        (directory / "memory.max").write_text(str(memory_bytes))
        with contextlib.suppress(OSError):
            (directory / "memory.swap.max").write_text("0")
        (directory / "pids.max").write_text(str(max_processes))
    except OSError:
        group.remove()
        raise
    return group


def sweep(parent: Path) -> None:
    """Remove the groups under `parent` that a sandbox worker killed with SIGKILL never removed (its
    run's processes died with it, bubblewrap's --die-with-parent, but the directories stay). A group
    still holding a process cannot be removed (rmdir fails) and is left for a later sweep."""
    for group in parent.glob("forgeflow-*"):
        if _left_by_a_dead_worker(group.name):
            with contextlib.suppress(OSError):
                group.rmdir()


def _left_by_a_dead_worker(name: str) -> bool:
    parts = name.split("-")
    if len(parts) != 3 or not parts[1].isdigit():
        return False  # not a name this module gives
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, under another user
    return False
