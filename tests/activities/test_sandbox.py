"""run_tests for real: git archive, bubblewrap, pytest's own JUnit report — no mocks."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.sandbox import _cgroup
from activities.sandbox._layout import ENV_DIR, Mount
from activities.sandbox.bubblewrap import bwrap_argv
from activities.sandbox.run_tests import SandboxActivities
from config.settings import Settings
from contracts.testing import RunTestsInput, TestReport
from starter.workers import object_store, sandbox_config
from testkit.tools import git
from tests.blobs import settings_blobs, upload_tree


def make_repo(root: Path, files: dict[str, str]) -> tuple[Path, str]:
    repo = root / "repo"
    repo.mkdir()
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "tests")
    return repo, git(repo, "rev-parse", "HEAD")


def pytest_summary(repo: Path, *selected: str) -> str:
    """pytest's own closing line for the same suite (or the `selected` tests), run directly."""
    done = subprocess.run(
        ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *selected], cwd=repo, capture_output=True, text=True
    )
    return done.stdout.strip().splitlines()[-1].split(" in ")[0]


def processes_matching(pattern: str) -> str:
    return subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.strip()


async def run(
    repo: Path, sha: str, limit: int = 60, settings: Settings | None = None, tree: str | None = None, **req: Any
) -> TestReport:
    """The sandbox's report on commit `sha` of `repo`, its tree uploaded first (unless `tree` is given)."""
    settings = settings or Settings()
    acts = SandboxActivities(sandbox_config(settings))
    tree = tree or await upload_tree(object_store(settings), repo, sha)
    request = RunTestsInput(tree=tree, repository=str(repo), commit_sha=sha, timeout_seconds=limit, **req)
    report: TestReport = await ActivityEnvironment().run(acts.run_tests, request)
    return report


def small_limits(tmp_path: Path, **env: str) -> Settings:
    """A sandbox worker with tight limits, so escape attempts end in seconds."""
    values = {
        "FORGEFLOW_DATA_DIR": str(tmp_path / "data"),
        "FORGEFLOW_SANDBOX_MEMORY_MB": "256",
        "FORGEFLOW_SANDBOX_MAX_PROCESSES": "48",
        "FORGEFLOW_SANDBOX_OUTPUT_MB": "8",
    }
    return Settings.model_validate(values | env)


def cgroups_work() -> bool:
    group = _cgroup.create("probe-" + uuid.uuid4().hex[:8], memory_bytes=64 * 1024**2, max_processes=8)
    if group is None:
        return False
    group.remove()
    return True


needs_cgroups = pytest.mark.skipif(
    not cgroups_work(), reason="this host delegates no cgroup: memory and process limits fall back to rlimits"
)


MIXED = """
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("fixture exploded")

def test_ok():
    assert True

def test_fails():
    assert 1 + 1 == 3, "arithmetic is off"

def test_errors(broken):
    pass

@pytest.mark.skip(reason="not today")
def test_skipped():
    pass

@pytest.mark.parametrize("n", [1, 2, 3])
def test_param(n):
    assert n < 3

class TestGroup:
    def test_method(self):
        assert True
"""


async def test_counts_match_pytest_and_name_failures_by_node_id(tmp_path: Path) -> None:
    repo, sha = make_repo(tmp_path, {"tests/test_mixed.py": MIXED})
    report = await run(repo, sha)
    assert (report.status, report.total, report.passed, report.failed, report.errors, report.skipped) == (
        "failed", 8, 4, 2, 1, 1,
    )  # fmt: skip
    assert pytest_summary(repo) == "2 failed, 4 passed, 1 skipped, 1 error"  # what pytest itself says
    names = {f.name: f for f in report.failures}
    assert set(names) == {
        "tests/test_mixed.py::test_fails",
        "tests/test_mixed.py::test_param[3]",
        "tests/test_mixed.py::test_errors",
    }
    assert "arithmetic is off" in names["tests/test_mixed.py::test_fails"].message
    assert names["tests/test_mixed.py::test_errors"].kind == "error"
    assert "fixture exploded" in names["tests/test_mixed.py::test_errors"].output


async def test_passing_suite_with_coverage(tmp_path: Path) -> None:
    module = "def used():\n    return 1\n\n\ndef unused():\n    return 2\n"
    tests = "from lib import used\n\n\ndef test_a():\n    assert used() == 1\n\n\ndef test_b():\n    pass\n"
    repo, sha = make_repo(tmp_path, {"lib.py": module, "tests/test_a.py": tests})
    report = await run(repo, sha)
    assert (report.status, report.total, report.passed, report.exit_code) == ("passed", 2, 2, 0)
    assert report.coverage_percent is not None and 50 < report.coverage_percent < 100  # unused() never ran


async def test_collection_error_is_reported_against_the_file(tmp_path: Path) -> None:
    repo, sha = make_repo(tmp_path, {"tests/test_ok.py": "def test_ok():\n    pass\n", "tests/test_bad.py": "def (:\n"})
    report = await run(repo, sha)
    assert report.status == "failed" and report.errors == 1
    assert report.failures[0].name == "tests/test_bad.py"


async def test_no_tests_is_an_error_not_a_pass(tmp_path: Path) -> None:
    repo, sha = make_repo(tmp_path, {"README.md": "nothing to test\n"})
    report = await run(repo, sha)
    assert report.status == "error" and report.exit_code == 5


@pytest.fixture
def host_listener() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
    thread.start()
    yield server.getsockname()[1]
    server.close()


@pytest.fixture
def file_in_home() -> Iterator[Path]:
    """A file in the worker's home, whatever HOME is, for the probe to look for; removed afterwards,
    so the test depends on nothing the home happens to hold and leaves nothing in it."""
    path = Path.home() / f".forgeflow-probe-{uuid.uuid4().hex[:8]}"
    path.write_text("the worker's own file\n")
    assert path.exists()  # on the host, so the probe's check means something
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


async def test_no_network_and_no_worker_secrets(
    tmp_path: Path, host_listener: int, file_in_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORGEFLOW_TEST_SECRET", "s3cr3t-value")
    probe = f"""
import os, socket, pytest

def test_cannot_reach_the_host():
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", {host_listener}), timeout=2)

def test_secret_is_absent():
    assert "FORGEFLOW_TEST_SECRET" not in os.environ
    for pid in os.listdir("/proc"):  # every process the sandbox can see, its init (bwrap) included
        if pid.isdigit():
            assert "s3cr3t-value" not in open(f"/proc/{{pid}}/environ", errors="replace").read()

def test_only_the_sandbox_processes_are_visible():
    assert os.getpid() < 10 and "1" in os.listdir("/proc")
    assert all(int(p) < 100 for p in os.listdir("/proc") if p.isdigit())

def test_runs_unprivileged():
    assert os.getuid() == 65534
    caps = [line.split()[1] for line in open("/proc/self/status") if line.startswith("CapEff")]
    assert caps == ["0000000000000000"]

def test_cannot_write_outside_the_copy():
    with pytest.raises(OSError):
        open({str(tmp_path / "escaped.txt")!r}, "w").write("x")

def test_host_files_are_not_visible():
    assert not os.path.exists({str(file_in_home)!r})
    assert not os.path.exists({str(tmp_path)!r})
    assert not os.path.exists("/etc/shadow")
"""
    repo, sha = make_repo(tmp_path, {"tests/test_escape.py": probe})
    report = await run(repo, sha)
    assert report.status == "passed", report.output_tail
    assert report.passed == 6
    assert not (tmp_path / "escaped.txt").exists()


async def test_timeout_kills_the_run_and_leaves_nothing_behind(tmp_path: Path) -> None:
    slow = (
        "import subprocess\n\ndef test_slow():\n"
        "    subprocess.Popen(['sh', '-c', 'sleep 60; : forgeflow-marker-71'])\n"
        "    subprocess.run(['sh', '-c', 'sleep 60; : forgeflow-marker-71'])\n"
    )
    repo, sha = make_repo(tmp_path, {"tests/test_slow.py": slow})
    report = await run(repo, sha, limit=3)
    assert report.status == "timed_out" and report.exit_code is None
    assert report.output_tail.startswith("killed after the 3 s timeout")
    left = processes_matching("forgeflow-marker-71")
    assert left == "", f"processes left behind: {left}"


async def test_a_tree_missing_from_the_store_is_named_and_retried(tmp_path: Path) -> None:
    """Another sandbox worker, on the store the code host wrote to, may find it: the error is retryable."""
    repo, _ = make_repo(tmp_path, {"a.txt": "a\n"})
    settings = Settings.model_validate({"FORGEFLOW_DATA_DIR": str(tmp_path / "data")})
    with pytest.raises(ApplicationError) as err:
        await run(repo, "1" * 40, settings=settings, tree="0" * 40)
    assert err.value.type == "TreeMissing" and not err.value.non_retryable
    assert f"tree {'0' * 40} is not in the store {(tmp_path / 'data').as_uri()}" in err.value.message
    assert "workers must share FORGEFLOW_STORAGE_URL" in err.value.message


async def test_a_request_without_a_tree_fails_without_retry(tmp_path: Path) -> None:
    """What a run recorded before trees travelled by key sends: the sandbox opens no repository path."""
    acts = SandboxActivities(sandbox_config(Settings.model_validate({"FORGEFLOW_DATA_DIR": str(tmp_path)})))
    request = RunTestsInput.model_validate({"repo_path": str(tmp_path), "commit_sha": "a" * 40})
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(acts.run_tests, request)
    assert err.value.type == "TreeNotGiven" and err.value.non_retryable
    assert "Start the run again" in err.value.message


async def test_user_work_tree_untouched(tmp_path: Path) -> None:
    repo, sha = make_repo(tmp_path, {"tests/test_a.py": "def test_a():\n    open('made-by-test.txt', 'w')\n"})
    (repo / "uncommitted.txt").write_text("mine\n")
    await run(repo, sha)
    assert not (repo / "made-by-test.txt").exists()
    assert git(repo, "status", "--porcelain") == "?? uncommitted.txt"


def test_bwrap_argv_isolates() -> None:
    argv = bwrap_argv(
        "/usr/bin/bwrap",
        mounts=[Mount(source="/tmp/w", target="/workspace", writable=True), Mount(source="/c/env", target=ENV_DIR)],
        python_prefixes=["/opt/py"],
        command=["pytest"],
        env={"PATH": "/usr/bin"},
        exists=lambda p: p == "/usr",
    )
    assert argv[:2] == ["/usr/bin/bwrap", "--unshare-all"] and "--clearenv" in argv
    assert "--share-net" not in argv
    assert argv[argv.index("--uid") + 1] == "65534" and argv[argv.index("--cap-drop") + 1] == "ALL"
    assert argv[argv.index("--bind") + 1 : argv.index("--bind") + 3] == ["/tmp/w", "/workspace"]
    assert argv[argv.index("/c/env") - 1 : argv.index("/c/env") + 2] == ["--ro-bind", "/c/env", ENV_DIR]
    assert argv[argv.index("/opt/py") - 1 : argv.index("/opt/py") + 2] == ["--ro-bind", "/opt/py", "/opt/py"]
    assert "/etc/passwd" not in argv  # only host paths that exist are bound
    assert argv[argv.index("--setenv") : argv.index("--setenv") + 3] == ["--setenv", "PATH", "/usr/bin"]
    assert argv[-2:] == ["--", "pytest"]


async def test_uncommitted_overlay_files_are_part_of_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tester's new test file (a blob, not yet committed) runs with the commit; a deleted one does not."""
    data = tmp_path / "data"
    monkeypatch.setenv("FORGEFLOW_DATA_DIR", str(data))
    repo, sha = make_repo(
        tmp_path, {"tests/test_a.py": "def test_a():\n    pass\n", "tests/test_old.py": "def test_old():\n    pass\n"}
    )
    blobs = settings_blobs(Settings())
    key = blobs.put(b"def test_new():\n    assert 1 == 2\n")
    acts = SandboxActivities(sandbox_config(Settings()))
    tree = await upload_tree(object_store(Settings()), repo, sha)
    req = RunTestsInput(tree=tree, commit_sha=sha, overlay={"tests/test_new.py": key, "tests/test_old.py": None})
    report: TestReport = await ActivityEnvironment().run(acts.run_tests, req)
    assert (report.total, report.passed, report.failed) == (2, 1, 1)
    assert report.failures[0].name == "tests/test_new.py::test_new"


@needs_cgroups
async def test_a_fork_bomb_hits_the_process_limit(tmp_path: Path) -> None:
    bomb = """
import os, time

def test_bomb():
    parent = os.getpid()
    try:
        while True:
            os.fork()  # every process forks again: exponential
    except OSError:
        if os.getpid() != parent:  # sit where the host can see it (ps), until the run is torn down
            os.execvp("sh", ["sh", "-c", "sleep 60; : forgeflow-bomb-marker"])
    raise AssertionError("fork failed: the process limit held")
"""
    repo, sha = make_repo(tmp_path, {"tests/test_bomb.py": bomb})
    report = await run(repo, sha, limit=60, settings=small_limits(tmp_path))
    assert report.status == "too_many_processes", report.output_tail
    assert report.limits_enforced_by == "cgroup"
    assert "hit the limit of 48 processes" in report.output_tail
    assert report.failures[0].name == "tests/test_bomb.py::test_bomb"
    assert processes_matching("forgeflow-bomb-marker") == ""


@needs_cgroups
async def test_allocating_past_the_memory_limit_is_out_of_memory(tmp_path: Path) -> None:
    hog = "def test_hog():\n    blocks = [bytearray(32 * 1024 * 1024) for _ in range(32)]  # 1 GiB\n"
    repo, sha = make_repo(tmp_path, {"tests/test_hog.py": hog})
    report = await run(repo, sha, settings=small_limits(tmp_path))
    assert report.status == "out_of_memory", report.output_tail
    assert report.output_tail.startswith("ran out of memory (limit 256 MiB)")
    assert report.peak_memory_bytes is not None and report.peak_memory_bytes <= 256 * 1024**2


async def test_printing_gigabytes_stops_at_the_output_limit(tmp_path: Path) -> None:
    flood = "import os\n\ndef test_flood():\n    for _ in range(4096):\n        os.write(1, b'x' * 1024 * 1024)\n"
    repo, sha = make_repo(tmp_path, {"tests/test_flood.py": flood})
    report = await run(repo, sha, settings=small_limits(tmp_path))
    assert report.status == "too_much_output", report.output_tail
    assert len(report.output_tail) < 25_000
    assert not list((tmp_path / "data").rglob("*.log"))  # nothing of it kept on the worker


@needs_cgroups
async def test_burning_cpu_is_stopped_at_the_cpu_budget(tmp_path: Path) -> None:
    burn = (
        "import subprocess\n\ndef test_burn():\n"
        "    subprocess.run(['sh', '-c', 'while :; do :; done; : forgeflow-burn-marker'])\n"
    )
    repo, sha = make_repo(tmp_path, {"tests/test_burn.py": burn})
    settings = small_limits(tmp_path, FORGEFLOW_SANDBOX_CPU_FACTOR="0.05")  # 3 s of CPU for a 60 s run
    report = await run(repo, sha, limit=60, settings=settings)
    assert report.status == "timed_out" and report.exit_code is None
    assert report.output_tail.startswith("killed: used more than 3 s of CPU time")
    assert report.cpu_seconds is not None and report.cpu_seconds >= 3
    assert processes_matching("forgeflow-burn-marker") == ""


async def test_refuses_to_run_without_bubblewrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, sha = make_repo(tmp_path, {"tests/test_a.py": "def test_a():\n    pass\n"})
    tree = await upload_tree(object_store(Settings()), repo, sha)  # the code host's part, with git on PATH
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on PATH
    with pytest.raises(ApplicationError) as err:
        await run(repo, sha, tree=tree)
    assert err.value.type == "SandboxUnavailable" and err.value.non_retryable
    assert "bubblewrap" in err.value.message and "FORGEFLOW_ALLOW_UNSANDBOXED" in err.value.message


@pytest.mark.skipif(os.geteuid() != 0, reason="RLIMIT_NPROC binds non-root workers: no refusal needed")
async def test_a_root_worker_without_cgroups_refuses_unless_allowed(tmp_path: Path) -> None:
    """No cgroup (an empty hierarchy root) and root: rlimits can't bound processes, so refuse."""
    no_cgroups = str(tmp_path / "no-cgroups")
    hog = "def test_hog():\n    blocks = [bytearray(32 * 1024 * 1024) for _ in range(32)]  # 1 GiB\n"
    repo, sha = make_repo(tmp_path, {"tests/test_hog.py": hog})
    with pytest.raises(ApplicationError) as err:
        await run(repo, sha, settings=small_limits(tmp_path, FORGEFLOW_SANDBOX_CGROUP_ROOT=no_cgroups))
    assert err.value.type == "SandboxUnavailable" and err.value.non_retryable
    assert "no cgroup could be created" in err.value.message and "FORGEFLOW_SANDBOX_WEAK_LIMITS" in err.value.message

    weak = small_limits(tmp_path, FORGEFLOW_SANDBOX_CGROUP_ROOT=no_cgroups, FORGEFLOW_SANDBOX_WEAK_LIMITS="1")
    report = await run(repo, sha, settings=weak)
    assert report.limits_enforced_by == "rlimit"
    assert report.status == "out_of_memory", report.output_tail  # RLIMIT_AS: a MemoryError, named as such


async def test_a_selection_runs_only_those_tests_and_counts_as_pytest_does(tmp_path: Path) -> None:
    repo, sha = make_repo(tmp_path, {"tests/test_mixed.py": MIXED})
    chosen = ["tests/test_mixed.py::test_fails", "tests/test_mixed.py::test_param"]
    report = await run(repo, sha, selection=chosen)
    assert (report.status, report.total, report.passed, report.failed) == ("failed", 4, 2, 2)
    assert report.command[-2:] == chosen
    assert pytest_summary(repo, *chosen) == "2 failed, 2 passed"


async def test_watched_tests_get_their_own_outcomes_for_grading(tmp_path: Path) -> None:
    suite = MIXED + "\n@pytest.mark.xfail(reason='known')\ndef test_expected_failure():\n    assert False\n"
    repo, sha = make_repo(tmp_path, {"tests/test_mixed.py": suite})
    node = "tests/test_mixed.py::"
    watched = [f"{node}{name}" for name in ("test_ok", "test_fails", "test_errors", "test_skipped")]
    watched += [f"{node}test_expected_failure", f"{node}TestGroup::test_method", f"{node}test_not_there"]
    report = await run(repo, sha, watch=watched)
    assert report.outcomes == {
        f"{node}test_ok": "passed",
        f"{node}test_fails": "failed",
        f"{node}test_errors": "error",
        f"{node}test_skipped": "skipped",
        f"{node}test_expected_failure": "xfailed",
        f"{node}TestGroup::test_method": "passed",
        f"{node}test_not_there": "missing",  # never reported: it cannot pass for a fix
    }
    assert report.total == 9  # the whole suite ran; only the watched tests are named one by one
