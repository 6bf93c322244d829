"""Run cgroups on the real cgroup filesystem: a killed sandbox worker's leftovers are swept."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from activities.sandbox import _cgroup


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_new_group_sweeps_the_empty_groups_a_killed_worker_left() -> None:
    group = _cgroup.create("probe", memory_bytes=256 * 2**20, max_processes=64)
    if group is None:
        pytest.skip("no cgroup can be created here")
    parents = {directory.parent for directory in group.dirs.values()}
    group.remove()
    assert all(directory.name.startswith(f"forgeflow-{os.getpid()}-") for directory in group.dirs.values())

    left = [parent / f"forgeflow-{dead_pid()}-leftover" for parent in parents]  # as a kill -9 leaves them
    ours_still = [parent / f"forgeflow-{os.getpid()}-running" for parent in parents]  # a live worker's
    foreign = [parent / "forgeflow-not-ours" for parent in parents]  # a name this module never gives
    for directory in [*left, *ours_still, *foreign]:
        directory.mkdir()
    try:
        fresh = _cgroup.create("next", memory_bytes=256 * 2**20, max_processes=64)
        assert fresh is not None
        fresh.remove()
        assert not any(directory.exists() for directory in left)
        assert all(directory.exists() for directory in [*ours_still, *foreign])
    finally:
        for directory in [*left, *ours_still, *foreign]:
            if directory.exists():
                directory.rmdir()


@pytest.mark.parametrize(
    ("name", "swept"),
    [
        ("forgeflow-abc-1", False),
        ("forgeflow-1", False),
        ("forgeflow-1-2-3", False),
        ("forgeflow-{own pid}-x", False),  # this process's: alive
        ("forgeflow-1-x", False),  # pid 1 is alive (and not ours to judge)
    ],
)
def test_only_groups_named_by_a_dead_worker_are_swept(name: str, swept: bool) -> None:
    assert _cgroup._left_by_a_dead_worker(name.replace("{own pid}", str(os.getpid()))) is swept


def test_a_group_named_by_a_dead_worker_is_swept() -> None:
    assert _cgroup._left_by_a_dead_worker(f"forgeflow-{dead_pid()}-x")
