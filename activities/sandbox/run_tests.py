"""The `run_tests` activity (task queue forgeflow-sandbox): a commit's tests, isolated.

The commit's files are fetched from the object store by tree id (activities.trees: the code host
uploaded them when the run read or made the commit) into a fresh directory, never through a link,
and the agent's overlay laid on top; the install step runs (or comes from the cache),
then the detected or configured runner, which writes JUnit XML; each step runs under the worker's
isolation backend (activities.sandbox.backends chooses it). The report is parsed from that
file — never guessed from console text — and a limit the run hit is named in its status.

The same worker runs agents' shell commands (`run_command`, activities.sandbox.run_command).
What both share (the workspace copy, read without following links; the run's folders; one
isolated step) is in activities.sandbox._steps.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities._heartbeat import heartbeats
from activities.blobstore import BlobNotFoundError
from activities.sandbox import _runners
from activities.sandbox._layout import INBOX, Mount
from activities.sandbox._report import RunFiles, build_report, error_report, tail
from activities.sandbox._steps import (
    Folders,
    SandboxConfig,
    Stepper,
    Workspace,
    apply_overlay,
    damaged,
    fetch_tree,
)
from activities.sandbox._unpack import unpack_tree
from activities.sandbox.backend import IsolationBackend
from activities.sandbox.backends import select_backend
from activities.sandbox.run_command import CommandRun
from activities.trees import TreeArchiveError
from contracts.commands import CommandResult, RunCommandInput
from contracts.testing import RunTestsInput, SandboxLimits, TestReport
from policy.repo_config import RepoConfigError, load_config
from telemetry.instrument import operation

__all__ = ["SandboxActivities", "SandboxConfig"]
PATCH_SECONDS = 60


class SandboxActivities:
    def __init__(self, config: SandboxConfig) -> None:
        self._config = config
        self._blobs = config.blobs
        self._commands = CommandRun(config)

    @activity.defn(name="run_tests")
    @heartbeats  # from the start: exporting a large commit takes seconds before the tests run
    async def run_tests(self, req: RunTestsInput) -> TestReport:
        backend = select_backend(self._config.isolation)  # each run: an operator may install one meanwhile
        with tempfile.TemporaryDirectory(prefix="forgeflow-test-") as tmp:
            folders = Folders.make(Path(tmp))
            async with operation("sandbox", "run_tests") as outcome:
                await self._checkout(req, folders.workspace)
                edited = await self._blobs.get_many_async(key for key in req.overlay.values() if key is not None)
                refused = apply_overlay(folders.workspace, req.overlay, edited)
                limits = self._config.limits(req.timeout_seconds)
                report = (
                    error_report(req.commit_sha, limits, refused)
                    if refused is not None
                    else await _Run(self._config, backend, req, folders).run(limits)
                )
                outcome.attributes = {
                    "forgeflow.tests.status": report.status,
                    "forgeflow.tests.total": report.total,
                    "forgeflow.tests.failed": report.failed + report.errors,
                    "forgeflow.tests.runner": report.runner or "none",
                }
                return report

    @activity.defn(name="run_command")
    @heartbeats  # a command runs for up to its timeout
    async def run_command(self, req: RunCommandInput) -> CommandResult:
        return await self._commands.run(req)

    async def _checkout(self, req: RunTestsInput, workspace: Path) -> None:
        """The commit's files, fetched from the object store by tree id, into the empty `workspace`."""
        archive = await fetch_tree(self._config.trees, req.tree, req.commit_sha)
        try:
            await asyncio.to_thread(unpack_tree, archive, workspace)
        except TreeArchiveError as err:
            raise damaged(str(req.tree), err) from None


class _Run:
    """One run_tests call: install step, test step, report."""

    def __init__(self, config: SandboxConfig, backend: IsolationBackend, req: RunTestsInput, folders: Folders) -> None:
        self.config, self.backend, self.req = config, backend, req
        self.ws, self.out_dir, self.host_dir = Workspace(folders.workspace), folders.out, folders.host
        self.steps = Stepper(config, backend, folders)

    async def run(self, limits: SandboxLimits) -> TestReport:
        if self.req.patch_key is not None:
            refused = await self._apply_patch(self.req.patch_key)
            if refused is not None:
                return error_report(self.req.commit_sha, limits, refused)
        try:
            config = load_config(self.ws.config_text())
        except RepoConfigError as err:
            return error_report(self.req.commit_sha, limits, str(err))
        install_command = self.req.install_command or config.test.install
        paths = self.ws.paths()  # one walk of the copy serves detection and the cache key
        plan = _runners.choose(
            run_command=self.req.test_command,
            config=config,
            paths=paths,
            read=self.ws.read,
            python="python" if install_command else sys.executable,  # the install's virtualenv, if any
            coverage=importlib.util.find_spec("pytest_cov") is not None and not self.req.selection,
        )
        try:
            plan = _runners.with_selection(plan, self.req.selection)
        except _runners.SelectionError as err:
            return error_report(self.req.commit_sha, limits, str(err))
        prepared = await self.steps.install(self.ws, install_command, paths, plan.runner, self.req.repository)
        if prepared.failed:
            return error_report(self.req.commit_sha, limits, "the install step failed", prepared.report)
        started = time.monotonic()
        log = self.host_dir / "test.log"
        finished = await self.steps.step(plan.command, prepared.mounts, plan.env, log, limits)
        return build_report(
            self.req.commit_sha,
            plan,
            finished,
            limits,
            RunFiles(known_files=frozenset(paths), out_dir=self.out_dir, log=log, watch=frozenset(self.req.watch)),
            seconds=time.monotonic() - started,
            install=prepared.report,
            unsandboxed=not self.backend.isolates,
        )

    async def _apply_patch(self, key: str) -> str | None:
        """The patch applied to the workspace by `git apply` in the sandbox (it refuses to write beyond a
        link); why it did not apply, or None."""
        try:
            patch = await self.config.blobs.get_async(key)
        except BlobNotFoundError as err:  # retryable: another worker may share the store
            raise ApplicationError(str(err), type="BlobNotFound") from err
        inbox = self.host_dir.parent / "in"
        inbox.mkdir(mode=0o700)
        (inbox / "test.patch").write_bytes(patch)
        log = self.host_dir / "patch.log"
        finished = await self.steps.step(
            ["git", "apply", "--whitespace=nowarn", f"{INBOX}/test.patch"],
            [Mount(source=str(inbox), target=INBOX)],
            {},
            log,
            self.config.limits(PATCH_SECONDS),
            what="test patch",
        )
        if finished.exit_code == 0:
            return None
        return f"the test patch does not apply (git apply: exit code {finished.exit_code}):\n{tail(log)}"
