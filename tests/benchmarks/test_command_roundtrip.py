"""`python -m benchmarks.command_roundtrip` as a person runs it, with tiny settings: the table's
structure and the cleanup, never the times it prints (they depend on the machine and its load)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testkit.tools import git

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
GOAL_LINE = re.compile(r"^run_command `true` round trip p50 \d+ ms — goal < 500 ms: (met|not met)$", re.MULTILINE)


def benchmark(repo: Path, tmp: Path, *args: str) -> subprocess.Popen[str]:
    """The benchmark on `repo`, its temporary files under `tmp` (TMPDIR) so a test sees what stays."""
    tmp.mkdir()
    argv = [sys.executable, "-m", "benchmarks.command_roundtrip", "--repo", str(repo), *args]
    env = {**os.environ, "TMPDIR": str(tmp)}
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def processes_under(folder: Path) -> list[str]:
    """Command lines of live processes that name `folder` (the dev server names its database there)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        if str(folder) in text:
            found.append(text)
    return found


def test_prints_each_row_against_its_floor_and_leaves_nothing(sample_repo: Path, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    proc = benchmark(sample_repo, tmp, "--rounds", "2", "--edits", "1")
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    files = len(git(sample_repo, "ls-files").splitlines())
    assert f"repository {sample_repo} (given by --repo) at " in out and f": {files} files" in out
    for row in (
        "floor 1: no-op activity",
        "floor 2: bwrap `true`, no Temporal",
        "run_command `true` ",
        "run_command `true`, 1 edits",
    ):
        assert re.search(rf"^{re.escape(row)}.* \d+\.\d+x\s*$", out, re.MULTILINE), (row, out)
    assert "cold: the worker's first run_command `true`" in out
    for piece in ("take a working copy", "bubblewrap step (floor 2)", "give it back (reset to the commit)", "sum"):
        assert re.search(rf"^  {re.escape(piece)} +-?\d+\.\d", out, re.MULTILINE), (piece, out)
    assert GOAL_LINE.search(out), out
    assert list(tmp.iterdir()) == []


def test_sigterm_stops_the_server_and_removes_the_temporary_folder(sample_repo: Path, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    proc = benchmark(sample_repo, tmp, "--rounds", "500")
    deadline = time.monotonic() + 120
    # Once the sandbox keeps the commit, the server, both workers and a command have run.
    while not list(tmp.glob("forgeflow-command-roundtrip-*/data/sandbox-trees/*")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.2)
    assert processes_under(tmp)  # the dev server, its database in the temporary folder
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert processes_under(tmp) == []
    assert list(tmp.iterdir()) == []
