"""The sandbox runs the worker's own interpreter wherever it is installed, and says so plainly when
bubblewrap cannot start the runner at all (issue 19, item 3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.sandbox._layout import ENV_DIR, OUT, WORKSPACE, Mount
from activities.sandbox.bubblewrap import bwrap_argv, interpreter_paths, launch_failure
from contracts.testing import TestReport
from tests.activities.test_sandbox import make_repo, run

ROOT = Path(__file__).resolve().parents[2]
# Runs the activity in a process whose interpreter is the virtualenv's: sys.prefix is what the
# sandbox binds, so this is a worker installed in that virtualenv.
RUN_IN_VENV = """
import asyncio, sys
from temporalio.testing import ActivityEnvironment
from activities.sandbox.run_tests import SandboxActivities
from config.settings import Settings
from contracts.testing import RunTestsInput
from pathlib import Path
from starter.workers import object_store, sandbox_config
from tests.blobs import upload_tree

settings = Settings()
tree = asyncio.run(upload_tree(object_store(settings), Path(sys.argv[1]), sys.argv[2]))
request = RunTestsInput(tree=tree, commit_sha=sys.argv[2], timeout_seconds=60)
report = asyncio.run(ActivityEnvironment().run(SandboxActivities(sandbox_config(settings)).run_tests, request))
print(report.model_dump_json())
"""


@pytest.fixture
def venv_under_tmp() -> Iterator[Path]:
    """A real virtualenv directly under /tmp (not pytest's basetemp, which may be elsewhere), using
    the suite's packages; without pip, so it takes a fraction of a second."""
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="forgeflow-venv-") as home:
        venv = Path(home) / "venv"
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
            check=True,
            capture_output=True,
        )
        (Path(home) / "host-only.txt").write_text("beside the virtualenv on the host\n")
        yield venv


def test_a_worker_in_a_virtualenv_under_tmp_runs_the_tests(venv_under_tmp: Path, tmp_path: Path) -> None:
    marker = venv_under_tmp.parent / "host-only.txt"
    probe = f"""
import os, sys

def test_runs_on_the_virtualenvs_interpreter():
    assert sys.prefix == {str(venv_under_tmp)!r}

def test_tmp_is_private_and_writable():
    assert not os.path.exists({str(marker)!r})  # the host's /tmp does not show through
    with open("/tmp/scratch.txt", "w") as f:
        f.write("x")

def test_the_interpreter_is_read_only():
    assert not os.access({str(venv_under_tmp / "bin")!r}, os.W_OK)

def test_the_base_interpreter_sees_only_the_test_tools_too():
    import subprocess
    probe = "import importlib.util as u; print(u.find_spec('temporalio') is None, u.find_spec('pytest') is not None)"
    base = os.path.join(sys.base_prefix, "bin", "python3")
    found = subprocess.run([base, "-c", probe], capture_output=True, text=True)
    assert found.stdout.split() == ["True", "True"], found.stderr
"""
    repo, sha = make_repo(tmp_path, {"tests/test_probe.py": probe})
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FORGEFLOW_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [str(venv_under_tmp / "bin" / "python"), "-c", RUN_IN_VENV, str(repo), sha],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = TestReport.model_validate(json.loads(done.stdout.strip().splitlines()[-1]))
    assert report.command[0] == str(venv_under_tmp / "bin" / "python")
    assert report.status == "passed", report.output_tail
    assert report.passed == 4


async def test_a_runner_that_cannot_start_is_reported_as_such(tmp_path: Path) -> None:
    repo, sha = make_repo(tmp_path, {"tests/test_a.py": "def test_a():\n    pass\n"})
    with pytest.raises(ApplicationError) as err:
        await run(repo, sha, test_command=["/nonexistent/bin/python3", "-m", "pytest"])
    assert err.value.type == "SandboxUnavailable" and err.value.non_retryable
    assert err.value.message == (
        "the sandbox could not start the test runner: /nonexistent/bin/python3: No such file or directory"
    )


def _binds(argv: list[str]) -> list[str]:
    """The targets of the argv's mounts, in the order bubblewrap makes them."""
    targets = []
    for i, arg in enumerate(argv):
        if arg in ("--ro-bind", "--bind"):
            targets.append(argv[i + 2])
        elif arg in ("--tmpfs", "--proc", "--dev"):
            targets.append(argv[i + 1])
    return targets


@pytest.mark.parametrize("prefix", ["/tmp/venv", "/home/me/.venv", "/workspace/project/.venv", "/opt/py"])
def test_the_interpreter_is_mounted_after_what_could_hide_it(prefix: str) -> None:
    argv = bwrap_argv(
        "/usr/bin/bwrap",
        mounts=[Mount(source="/tmp/run/w", target=WORKSPACE, writable=True), Mount(source="/tmp/run/o", target=OUT)],
        python_prefixes=[prefix],
        command=["python"],
        env={},
        hosts=Path("/tmp/run/hosts"),
        exists=lambda p: p == "/usr",
    )
    binds = _binds(argv)
    assert binds == ["/usr", "/tmp", "/proc", "/dev", "/etc/hosts", WORKSPACE, OUT, prefix]


@pytest.mark.parametrize(
    ("prefixes", "owned", "existing", "bound"),
    [
        (["/tmp/v", "/root/py"], ["/tmp"], set(), ["/tmp/v", "/root/py"]),
        (["/opt/py", "/opt/py"], ["/tmp"], set(), ["/opt/py"]),  # sys.prefix == sys.base_prefix
        # A prefix that would cover the sandbox's own /tmp (or its root) lends only its interpreter's parts.
        (["/tmp"], ["/tmp"], {"/tmp/bin", "/tmp/lib", "/tmp/pyvenv.cfg"}, ["/tmp/bin", "/tmp/lib", "/tmp/pyvenv.cfg"]),
        (["/"], ["/tmp", WORKSPACE], {"/bin", "/lib", "/lib64"}, ["/bin", "/lib", "/lib64"]),
        (["/workspace"], ["/tmp", WORKSPACE], {"/workspace/bin"}, ["/workspace/bin"]),
        (["/workspace/p/.venv"], ["/tmp", WORKSPACE], set(), ["/workspace/p/.venv"]),
        ([f"{ENV_DIR}-base"], ["/tmp", ENV_DIR], set(), [f"{ENV_DIR}-base"]),  # a sibling, not a parent
    ],
)
def test_interpreter_paths(prefixes: list[str], owned: list[str], existing: set[str], bound: list[str]) -> None:
    assert interpreter_paths(prefixes, owned, existing.__contains__) == bound


@pytest.mark.parametrize(
    ("exit_code", "first_line", "why"),
    [
        (1, "bwrap: execvp /v/bin/python3: No such file or directory", "/v/bin/python3: No such file or directory"),
        (1, "bwrap: execvp /etc/passwd: Permission denied", "/etc/passwd: Permission denied"),
        (1, "bwrap: Can't find source path /x: Permission denied", "Can't find source path /x: Permission denied"),
        (1, "============================= test session starts ==", None),  # the runner ran and failed
        (0, "bwrap: execvp x: No such file or directory", None),  # it ran: only bubblewrap exits 1 on this
        (2, "bwrap: execvp x: No such file or directory", None),
        (None, "bwrap: execvp x: No such file or directory", None),  # killed at a limit
        (1, "", None),
    ],
)  # fmt: skip
def test_launch_failure(exit_code: int | None, first_line: str, why: str | None) -> None:
    assert launch_failure(exit_code, first_line) == why
