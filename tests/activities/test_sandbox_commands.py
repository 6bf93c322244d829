"""run_command for real: a commit from the object store, bubblewrap, bash — no mocks.

What a command changes in the workspace comes back as edits (blob keys), and nothing else does.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.testing import ActivityEnvironment

from activities.sandbox._changes import walk
from activities.sandbox._prepared import reset
from activities.sandbox.run_tests import SandboxActivities
from config.settings import Settings
from contracts.commands import CommandResult, RunCommandInput
from starter.workers import object_store, sandbox_config
from testkit.tools import git
from tests.activities.test_sandbox import host_listener, make_repo, processes_matching, small_limits
from tests.blobs import settings_blobs, upload_tree
from tests.telemetry.test_observability import _free_port, samples, scrape

__all__ = ["host_listener"]  # a fixture, used by name below


class Sandbox:
    """One sandbox worker's activities and store, and a commit of a small repository on it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.acts = SandboxActivities(sandbox_config(settings))
        self.blobs = settings_blobs(settings)

    async def commit(self, tmp_path: Path, files: dict[str, str]) -> tuple[Path, str, str]:
        repo, sha = make_repo(tmp_path, files)
        return repo, sha, await upload_tree(object_store(self.settings), repo, sha)

    async def run(self, repo: Path, sha: str, tree: str, command: str, **req: Any) -> CommandResult:
        request = RunCommandInput(repository=str(repo), commit_sha=sha, tree=tree, command=command, **req)
        result: CommandResult = await ActivityEnvironment().run(self.acts.run_command, request)
        return result

    def text(self, result: CommandResult) -> str:
        return self.blobs.get(result.content_key).decode()

    def content(self, key: str | None) -> str:
        assert key is not None
        return self.blobs.get(key).decode()


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(small_limits(tmp_path))


async def test_files_the_command_writes_come_back_as_edits(tmp_path: Path, sandbox: Sandbox) -> None:
    repo, sha, tree = await sandbox.commit(
        tmp_path, {"a.txt": "one\n", "src/b.py": "B = 1\n", ".gitignore": "build/\n"}
    )
    command = "echo two >> a.txt && echo 'C = 3' > src/c.py && mkdir build && echo x > build/out.o && echo done"
    result = await sandbox.run(repo, sha, tree, command)
    assert (result.status, result.exit_code) == ("exited", 0)
    assert set(result.changes) == {"a.txt", "src/c.py"}  # build/ is ignored by the repository's .gitignore
    assert sandbox.content(result.changes["a.txt"]) == "one\ntwo\n"
    assert sandbox.content(result.changes["src/c.py"]) == "C = 3\n"
    text = sandbox.text(result)
    assert text.startswith(f"$ {command}\nexit code 0 after ")
    assert "done" in text and "M a.txt" in text and "A src/c.py" in text
    assert "build/out.o: ignored by .gitignore" in text


async def test_a_deleted_file_comes_back_as_a_deletion(tmp_path: Path, sandbox: Sandbox) -> None:
    repo, sha, tree = await sandbox.commit(tmp_path, {"old.py": "x = 1\n", "keep.py": "y = 2\n"})
    mine = sandbox.blobs.put(b"made by the agent\n")
    result = await sandbox.run(repo, sha, tree, "rm old.py mine.txt && ls", overlay={"mine.txt": mine})
    assert result.changes == {"old.py": None}
    assert result.removed_edits == ["mine.txt"]  # the agent's own file leaves its edits, not the commit
    assert "keep.py" in sandbox.text(result)


async def test_the_command_sees_the_agents_edits_and_rewriting_the_same_bytes_is_no_change(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    repo, sha, tree = await sandbox.commit(tmp_path, {"a.txt": "committed\n"})
    edit = sandbox.blobs.put(b"edited\n")
    result = await sandbox.run(repo, sha, tree, "cat a.txt; cp a.txt /tmp/x; cp /tmp/x a.txt", overlay={"a.txt": edit})
    assert "edited" in sandbox.text(result) and "committed" not in sandbox.text(result)
    assert result.changes == {}


async def test_no_network_no_host_files_and_no_worker_environment(
    tmp_path: Path, sandbox: Sandbox, host_listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORGEFLOW_TEST_SECRET", "s3cr3t-value")
    secret_file = tmp_path / "host-only.txt"
    secret_file.write_text("host\n")
    repo, sha, tree = await sandbox.commit(tmp_path, {"probe.py": "print('x')\n"})
    probe = (
        f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {host_listener}), timeout=2)\" "
        "2>/dev/null && echo NET-OPEN || echo net-closed; "
        f"cat {secret_file} 2>/dev/null && echo HOST-FILE || echo host-file-absent; "
        "cat /proc/1/environ /proc/self/environ 2>/dev/null | tr '\\0' '\\n' | grep -c s3cr3t-value; "
        "env | grep -c FORGEFLOW_TEST_SECRET; id -u"
    )
    result = await sandbox.run(repo, sha, tree, probe)
    text = sandbox.text(result).split("\n", 2)[2]  # the output, after the command and how it ended
    assert "net-closed" in text and "NET-OPEN" not in text
    assert "host-file-absent" in text and "HOST-FILE" not in text
    assert "s3cr3t-value" not in text
    assert "\n0\n0\n65534" in text  # no secret in any environment it can read; the unprivileged user
    assert result.changes == {}


async def test_a_hanging_command_times_out_and_leaves_nothing_running(tmp_path: Path, sandbox: Sandbox) -> None:
    repo, sha, tree = await sandbox.commit(tmp_path, {"a.txt": "a\n"})
    result = await sandbox.run(repo, sha, tree, "echo started; sleep 120; : forgeflow-marker-hang", timeout_seconds=2)
    assert (result.status, result.exit_code) == ("timed_out", None)
    text = sandbox.text(result)
    assert "still running after the 2 s timeout" in text and "started" in text
    assert processes_matching("forgeflow-marker-hang") == ""


async def test_a_background_process_is_killed_when_the_command_ends(tmp_path: Path, sandbox: Sandbox) -> None:
    repo, sha, tree = await sandbox.commit(tmp_path, {"a.txt": "a\n"})
    command = "(sleep 120; : forgeflow-marker-bg) & echo left-running"
    result = await sandbox.run(repo, sha, tree, command)
    assert (result.status, result.exit_code) == ("exited", 0)
    assert result.duration_seconds < 60  # it did not wait for the background sleep
    assert processes_matching("forgeflow-marker-bg") == ""


async def test_a_flood_of_output_is_bounded_head_and_tail(tmp_path: Path, sandbox: Sandbox) -> None:
    repo, sha, tree = await sandbox.commit(tmp_path, {"a.txt": "a\n"})
    command = "echo FIRST-LINE; seq 1 700000; echo LAST-LINE"  # 4.8 MB, under the 8 MiB limit
    result = await sandbox.run(repo, sha, tree, command)
    text = sandbox.text(result)
    assert result.status == "exited" and result.output_bytes > 4_000_000 and result.output_cut_bytes > 4_000_000
    assert "FIRST-LINE" in text and "LAST-LINE" in text
    assert f"[… {result.output_cut_bytes} bytes of output cut here …]" in text
    assert len(text) < 14_000


async def test_output_past_the_limit_stops_the_command(tmp_path: Path) -> None:
    sandbox = Sandbox(small_limits(tmp_path, FORGEFLOW_SANDBOX_OUTPUT_MB="1"))
    repo, sha, tree = await sandbox.commit(tmp_path, {"a.txt": "a\n"})
    result = await sandbox.run(repo, sha, tree, "yes forgeflow")
    assert result.status == "too_much_output"
    assert "stopped at the output limit of 1 MiB" in sandbox.text(result)


async def test_links_and_what_leaves_the_workspace_are_not_kept(tmp_path: Path, sandbox: Sandbox) -> None:
    repo, sha, tree = await sandbox.commit(tmp_path, {"a.txt": "a\n"})
    command = "ln -s /etc/passwd out.txt; ln -s a.txt inner.txt; echo x > /tmp/elsewhere; mkfifo pipe"
    result = await sandbox.run(repo, sha, tree, command)
    assert result.changes == {}
    why = {item.path: item.why for item in result.not_kept}
    assert set(why) == {"out.txt", "inner.txt", "pipe"}
    assert "symbolic link" in why["out.txt"] and "regular file" in why["pipe"]


async def test_the_tester_keeps_test_files_only_and_a_read_only_role_keeps_nothing(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    repo, sha, tree = await sandbox.commit(tmp_path, {"lib.py": "x = 1\n", "tests/test_lib.py": "def test(): pass\n"})
    command = "echo 'x = 2' > lib.py; echo 'def test_two(): pass' >> tests/test_lib.py"
    tester = await sandbox.run(repo, sha, tree, command, tests_only=True)
    assert list(tester.changes) == ["tests/test_lib.py"]
    assert [(n.path, n.why) for n in tester.not_kept] == [("lib.py", "the tester keeps changes to test files only")]
    reader = await sandbox.run(repo, sha, tree, command, keep_changes=False)
    assert reader.changes == {} and "read-only" in sandbox.text(reader)


async def test_what_the_install_step_makes_is_not_kept(tmp_path: Path, sandbox: Sandbox) -> None:
    repo, sha, tree = await sandbox.commit(tmp_path, {"a.py": "x = 1\n"})
    install = ["sh", "-c", "mkdir -p pkg.egg-info && echo meta > pkg.egg-info/PKG-INFO && echo i > made.txt"]
    command = "echo changed > made.txt; echo new > pkg.egg-info/extra; echo y > a.py"
    result = await sandbox.run(repo, sha, tree, command, install_command=install)
    assert result.install is not None and result.install.exit_code == 0
    assert list(result.changes) == ["a.py"]
    assert {n.path for n in result.not_kept} == {"made.txt", "pkg.egg-info/extra"}


async def test_a_failed_install_step_is_reported_and_nothing_runs(tmp_path: Path, sandbox: Sandbox) -> None:
    repo, sha, tree = await sandbox.commit(tmp_path, {"a.py": "x = 1\n"})
    result = await sandbox.run(repo, sha, tree, "touch ran.txt", install_command=["sh", "-c", "echo nope; exit 3"])
    assert result.status == "not_run" and result.changes == {}
    text = sandbox.text(result)
    assert "not run: the install step failed" in text and "nope" in text


async def test_the_commit_is_unpacked_once_and_each_command_gets_a_fresh_copy(tmp_path: Path, sandbox: Sandbox) -> None:
    repo, sha, tree = await sandbox.commit(tmp_path, {"a.txt": "a\n"})
    first = await sandbox.run(repo, sha, tree, "echo b > a.txt; echo new > b.txt")
    assert set(first.changes) == {"a.txt", "b.txt"}
    # The tree's archive is gone from the store: a second command finds the commit kept on this worker.
    archive = sandbox.settings.data_dir / "trees" / f"{tree}.tar.gz"
    assert archive.exists()
    archive.unlink()
    second = await sandbox.run(repo, sha, tree, "cat a.txt; ls")
    text = sandbox.text(second)
    assert "\na\n" in text and "b.txt" not in text  # the first command's changes are not in the kept copy
    kept = sandbox.settings.sandbox_trees_dir / tree
    assert (kept / "a.txt").read_text() == "a\n"
    assert os.stat(kept).st_mode & 0o777  # a real folder, the worker's


async def test_a_file_changed_by_a_committed_link_is_refused_not_followed(tmp_path: Path, sandbox: Sandbox) -> None:
    """A commit whose link points out of the workspace: the command writes through it inside the
    sandbox (where the target is the sandbox's own), and the worker never follows it on the host."""
    target = tmp_path / "host-target.txt"
    target.write_text("host\n")
    repo, sha = make_repo(tmp_path, {"a.txt": "a\n"})
    os.symlink(target, repo / "escape")
    git(repo, "add", "escape")
    git(repo, "commit", "-qm", "link")
    sha = git(repo, "rev-parse", "HEAD")
    tree = await upload_tree(object_store(sandbox.settings), repo, sha)
    result = await sandbox.run(repo, sha, tree, "echo changed > escape 2>&1; rm escape; echo file > escape")
    assert target.read_text() == "host\n"
    assert sandbox.content(result.changes["escape"]) == "file\n"  # the link replaced by a file: an edit


async def test_every_command_is_a_span_a_metric_and_a_log_line_with_its_exit_code(
    tmp_path: Path, sandbox: Sandbox, spans: InMemorySpanExporter
) -> None:
    repo, sha, tree = await sandbox.commit(tmp_path, {"a.txt": "a\n"})
    port = _free_port()
    env = ActivityEnvironment()
    runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(f"127.0.0.1:{port}")))  # serves while held
    env.metric_meter = runtime.metric_meter
    request = RunCommandInput(repository=str(repo), commit_sha=sha, tree=tree, command="echo x > b.txt; exit 3")
    with structlog.testing.capture_logs() as logs:
        result: CommandResult = await env.run(sandbox.acts.run_command, request)
    (span,) = [s for s in spans.get_finished_spans() if s.name == "sandbox run_command"]
    attributes = dict(span.attributes or {})
    assert attributes["forgeflow.command.exit_code"] == 3 and attributes["forgeflow.command.status"] == "exited"
    assert attributes["forgeflow.command.changed_files"] == 1
    assert attributes["forgeflow.command.seconds"] == result.duration_seconds
    (line,) = [entry for entry in logs if entry["event"] == "command"]
    assert (line["exit_code"], line["status"], line["seconds"]) == (3, "exited", result.duration_seconds)
    (counted,) = samples(scrape(port), "forgeflow_command_seconds_count")
    assert counted[0] | {"exit_code": "3", "status": "exited"} == counted[0] and counted[1] == 1


# --- working copies: reused, and put back the way the commit has them --------------------------

FINGERPRINT = (
    "find . -path ./node_modules -prune -o -printf '%y %m %p -> %l\\n' | LC_ALL=C sort; "
    "find . -type f -exec md5sum {} + | LC_ALL=C sort"
)
NASTY = """
echo changed >> a.txt
printf 'same\\n' > same.txt
rm b.txt
echo new > new.txt
mkdir -p newdir/deep && echo x > newdir/deep/f
chmod 700 src && chmod 600 src/c.py && chmod +x a.txt
rm -rf d && ln -s /etc d
rm e.txt && mkdir e.txt && echo y > e.txt/inner
ln -sfn b.txt lnk
mkfifo fifo
ln a.txt hard.txt
git init -q . 2>/dev/null || mkdir -p .git/objects
touch -d '2000-01-01' a.txt new.txt
echo done
"""
COMMIT = {"a.txt": "a\n", "b.txt": "b\n", "same.txt": "same\n", "src/c.py": "C = 1\n", "d/f.txt": "f\n", "e.txt": "e\n"}


def live_copies(sandbox: Sandbox, tree: str) -> list[Path]:
    folder = sandbox.settings.sandbox_trees_dir / f"{tree}.live"
    return sorted(folder.iterdir()) if folder.exists() else []


async def test_a_working_copy_is_reused_and_put_back_exactly_as_the_commit_has_it(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    repo, sha = make_repo(tmp_path, COMMIT)
    os.symlink("a.txt", repo / "lnk")
    git(repo, "add", "lnk")
    git(repo, "commit", "-qm", "a link")
    sha = git(repo, "rev-parse", "HEAD")
    tree = await upload_tree(object_store(sandbox.settings), repo, sha)
    first = sandbox.text(await sandbox.run(repo, sha, tree, FINGERPRINT)).split("\n", 2)[2]
    (copy,) = live_copies(sandbox, tree)
    nasty = await sandbox.run(repo, sha, tree, NASTY)
    assert "done" in sandbox.text(nasty) and nasty.status == "exited"
    assert live_copies(sandbox, tree) == [copy]  # the same working copy, put back
    again = sandbox.text(await sandbox.run(repo, sha, tree, FINGERPRINT)).split("\n", 2)[2]
    assert again == first
    assert live_copies(sandbox, tree) == [copy]


async def test_a_cancelled_command_does_not_leave_its_working_copy_for_reuse(tmp_path: Path, sandbox: Sandbox) -> None:
    repo, sha, tree = await sandbox.commit(tmp_path, {"a.txt": "a\n"})
    await sandbox.run(repo, sha, tree, "true")
    (copy,) = live_copies(sandbox, tree)
    env = ActivityEnvironment()
    request = RunCommandInput(repository=str(repo), commit_sha=sha, tree=tree, command="echo x >> a.txt; sleep 60")
    task = asyncio.create_task(env.run(sandbox.acts.run_command, request))
    for _ in range(100):  # until the command runs in the copy
        if processes_matching("sleep 60") != "":
            break
        await asyncio.sleep(0.1)
    env.cancel()
    with pytest.raises(BaseException) as cancelled:
        await task
    assert "Cancel" in type(cancelled.value).__name__
    assert not copy.exists() and live_copies(sandbox, tree) == []
    after = await sandbox.run(repo, sha, tree, "cat a.txt")
    assert sandbox.text(after).endswith("\na")  # a fresh copy of the commit


def test_a_working_copy_that_cannot_be_put_back_is_refused(tmp_path: Path) -> None:
    kept, live = tmp_path / "kept", tmp_path / "live"
    for folder in (kept, live):
        (folder / "src").mkdir(parents=True)
        (folder / "src" / "a.py").write_text("A = 1\n")
    clean = walk(live)
    (live / "src" / "a.py").write_text("A = 2\n")
    assert reset(live, kept, clean) is not None and (live / "src" / "a.py").read_text() == "A = 1\n"
    clean = walk(live)
    (live / "src" / "a.py").write_text("A = 3\n")
    (kept / "src" / "a.py").unlink()  # the kept commit lost the file: the copy cannot be put back
    assert reset(live, kept, clean) is None


async def test_a_working_copy_evicted_with_its_tree_is_not_used(tmp_path: Path, sandbox: Sandbox) -> None:
    repo, sha, tree = await sandbox.commit(tmp_path, {"a.txt": "a\n"})
    await sandbox.run(repo, sha, tree, "true")
    (copy,) = live_copies(sandbox, tree)
    shutil.rmtree(copy)  # as the cache's trim does to a tree nobody used for an hour
    result = await sandbox.run(repo, sha, tree, "cat a.txt")
    assert result.status == "exited" and sandbox.text(result).endswith("\na")
    assert len(live_copies(sandbox, tree)) == 1
