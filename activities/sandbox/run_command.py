"""The `run_command` activity's work: one agent's shell command, in the same sandbox as the tests.

The command runs by `bash -c` in /workspace: a copy of the commit (kept unpacked on this worker,
activities.sandbox._prepared) with the agent's edits laid on it and the install step's environment
(its virtualenv on PATH, node_modules bound), under the same isolation and limits as a test run,
with no network. Its output (stdout and stderr together) is shown bounded: its head and its tail,
with the size of what was cut.

What the command changed in the workspace comes back as edits: each file it created or changed is
put in the blob store and returned by key, each file it deleted as None, and the workflow folds them
into the agent's overlay. Not kept, and said so: links, what the install step made, new files git
would ignore, anything but test files for the tester, and everything for a read-only role.
Changes outside the workspace vanish with the sandbox.

The answer the agent reads goes to the blob store too, and travels by key.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from activities.blobstore import BlobStore
from activities.sandbox import _changes, _install, _runners, _safefs
from activities.sandbox._limited import Finished
from activities.sandbox._prepared import PreparedTrees
from activities.sandbox._report import KILLED_BY_FILE_SIZE
from activities.sandbox._steps import Folders, SandboxConfig, Stepper, Workspace, apply_overlay
from activities.sandbox.backends import select_backend
from contracts.commands import CommandResult, NotKept, RunCommandInput
from contracts.testing import InstallReport, SandboxLimits
from policy.command_report import Change, CommandEnd, command_preview, command_status, command_text
from policy.paths import is_test_path
from policy.redact import redact
from policy.repo_config import RepoConfig, RepoConfigError, load_config
from telemetry.instrument import operation, record_command

HEAD_BYTES = 4_000  # of the output, shown from its start
TAIL_BYTES = 8_000  # and from its end
MAX_KEPT_FILES = 500  # a command that changes more keeps none (a build folder .gitignore misses?)
MAX_KEPT_FILE_BYTES = 8 * 1024**2
MAX_GITIGNORE_BYTES = 256 * 1024

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Output:
    head: bytes
    tail: bytes
    size: int

    @property
    def cut(self) -> int:
        return self.size - len(self.head) - len(self.tail)


class CommandRun:
    def __init__(self, config: SandboxConfig) -> None:
        self._config = config
        self._blobs: BlobStore = config.blobs
        self._trees = PreparedTrees(config.trees_dir, config.trees, config.cache_max_bytes)  # one per worker process

    async def run(self, req: RunCommandInput) -> CommandResult:
        backend = select_backend(self._config.isolation)  # each run: an operator may install one meanwhile
        async with operation("sandbox", "run_command") as outcome:
            with tempfile.TemporaryDirectory(prefix="forgeflow-command-") as tmp:
                async with self._trees.checkout(req.tree, req.commit_sha) as checkout:
                    folders = Folders.make(Path(tmp), workspace=checkout.path)
                    steps = Stepper(self._config, backend, folders)
                    result = await _Command(self._config, self._blobs, steps, req).run(checkout.kept)
            outcome.ok = result.status != "not_run"
            outcome.attributes = {
                "forgeflow.command.status": result.status,
                "forgeflow.command.exit_code": -1 if result.exit_code is None else result.exit_code,
                "forgeflow.command.seconds": result.duration_seconds,
                "forgeflow.command.changed_files": len(result.changes) + len(result.removed_edits),
            }
            return result


class _Command:
    def __init__(self, config: SandboxConfig, blobs: BlobStore, steps: Stepper, req: RunCommandInput) -> None:
        self.config, self.blobs, self.steps, self.req = config, blobs, steps, req
        self.folders = steps.folders
        self.ws = Workspace(self.folders.workspace)

    async def run(self, kept_tree: Path) -> CommandResult:
        """The command in the working copy (equal to the commit), with the agent's edits laid on it."""
        req = self.req
        limits = self.config.limits(req.timeout_seconds)
        edited = await self.blobs.get_many_async(key for key in req.overlay.values() if key is not None)
        refused = await asyncio.to_thread(apply_overlay, self.folders.workspace, req.overlay, edited)
        if refused is not None:
            return await self._not_run(refused, limits)
        try:
            repo_config = load_config(self.ws.config_text())
        except RepoConfigError as err:
            return await self._not_run(str(err), limits)
        before_install = await asyncio.to_thread(_changes.snapshot, self.folders.workspace)
        prepared = await self._prepare_install(req.install_command or repo_config.test.install, repo_config)
        if prepared.failed:
            return await self._not_run("the install step failed", limits, prepared.report)
        installed = prepared.report is not None and not prepared.report.cached
        before = await asyncio.to_thread(_changes.snapshot, self.folders.workspace) if installed else before_install
        log_file = self.folders.host / "command.log"
        started = time.monotonic()
        finished = await self.steps.step(
            ["bash", "-c", req.command], prepared.mounts, {}, log_file, limits, what="command"
        )
        seconds = round(time.monotonic() - started, 3)
        after = await asyncio.to_thread(_changes.snapshot, self.folders.workspace)
        found = await self._what_changed(kept_tree, edited, before_install, before, after)
        output = await asyncio.to_thread(_read_output, log_file)
        end = _end(finished, limits)
        status = command_status(end)
        text = command_text(
            command=req.command,
            status=status,
            end=end,
            seconds=seconds,
            head=output.head.decode("utf-8", "replace"),
            tail=output.tail.decode("utf-8", "replace"),
            cut=output.cut,
            changes=found.changes,
            removed=found.removed,
            not_kept=found.not_kept,
            keep=req.keep_changes,
            unsandboxed=not self.steps.backend.isolates,
        )
        keep = req.keep_changes
        return await self._result(
            text,
            command_preview(status, end, seconds, len(found.changes) + len(found.removed)),
            {
                "status": status,
                "exit_code": finished.exit_code,
                "duration_seconds": seconds,
                "output_bytes": output.size,
                "output_cut_bytes": max(0, output.cut),
                "changes": {change.path: change.key for change in found.changes} if keep else {},
                "removed_edits": found.removed if keep else [],
                "not_kept": found.not_kept,
                "install": prepared.report,
                "limits": limits,
            },
        )

    async def _prepare_install(self, command: list[str] | None, repo_config: RepoConfig) -> _install.Prepared:
        """The install step's environment; the runner only decides which kind (virtualenv or node_modules)."""
        paths = self.ws.paths()
        plan = _runners.choose(
            run_command=None, config=repo_config, paths=paths, read=self.ws.read, python=sys.executable, coverage=False
        )
        return await self.steps.install(self.ws, command, paths, plan.runner, self.req.repository)

    async def _what_changed(
        self,
        kept_tree: Path,
        edited: dict[str, bytes],
        before_install: _changes.Snapshot,
        before: _changes.Snapshot,
        after: _changes.Snapshot,
    ) -> _Found:
        """What the command changed that comes back as edits (contents put in the blob store), and
        what it changed that does not."""
        diff = _changes.compare(before, after)
        not_kept = [NotKept(path=path, why=why) for path, why in diff.not_kept.items()]
        install_owned = frozenset(p for p in before if before_install.get(p) != before[p])
        rules = _changes.KeepRules(
            tracked=frozenset(before),
            install_owned=install_owned,
            install_dirs=_changes.new_folders(install_owned, before_install),
            ignored=await asyncio.to_thread(self._ignored, after),
            tests_only=is_test_path if self.req.tests_only else None,
        )
        wanted = []
        for path in [*diff.written, *diff.deleted]:
            why = _changes.why_not_kept(path, rules)
            if why is None:
                wanted.append(path)
            else:
                not_kept.append(NotKept(path=path, why=why))
        found = await asyncio.to_thread(self._read, kept_tree, edited, before, after, wanted)
        found.not_kept[:0] = not_kept
        if len(found.changes) + len(found.removed) > MAX_KEPT_FILES:
            count = len(found.changes) + len(found.removed)
            why = f"the command changed {count} files; at most {MAX_KEPT_FILES} are kept, so none was"
            paths = [c.path for c in found.changes] + found.removed
            return _Found(not_kept=[*found.not_kept, *(NotKept(path=p, why=why) for p in paths)])
        keys = await asyncio.gather(*(self.blobs.put_async(c.data) for c in found.changes if c.data is not None))
        stored = iter(keys)
        found.changes = [c.with_key(None if c.data is None else next(stored)) for c in found.changes]
        return found

    def _ignored(self, after: _changes.Snapshot) -> _changes.Ignored:
        """The .gitignore files the workspace holds after the command (they can only keep less)."""
        texts = {}
        with _safefs.root(self.folders.workspace) as root:
            for path in _changes.gitignore_files(p for p, r in after.items() if r.kind == "file"):
                text = _safefs.read_text(root, path, MAX_GITIGNORE_BYTES)
                if text is not None:
                    texts[path] = text
        return _changes.Ignored(texts)

    def _read(
        self,
        kept_tree: Path,
        edited: dict[str, bytes],
        before: _changes.Snapshot,
        after: _changes.Snapshot,
        paths: list[str],
    ) -> _Found:
        """The changes at `paths`: new contents read (a file rewritten with its own bytes is no change),
        deletions sorted into the commit's files and the agent's own. Blocking."""
        found = _Found()
        with _safefs.root(self.folders.workspace) as now, _safefs.root(kept_tree) as kept:
            for path in paths:
                if path not in after:
                    in_commit = _safefs.lstat(kept, path) is not None
                    if in_commit:
                        found.changes.append(Change(path=path, kind="D"))
                    else:
                        found.removed.append(path)
                    continue
                read = _safefs.read_file(now, path, MAX_KEPT_FILE_BYTES)
                if read is None:  # replaced by something else since the walk: sandboxed code is gone by now
                    found.not_kept.append(NotKept(path=path, why="not a regular file"))
                elif read.truncated:
                    found.not_kept.append(NotKept(path=path, why=f"larger than {MAX_KEPT_FILE_BYTES // 1024**2} MiB"))
                elif path not in before or before[path].kind != "file":
                    found.changes.append(Change(path=path, kind="A" if path not in before else "M", data=read.data))
                elif read.data != self._was(kept, edited, path):
                    found.changes.append(Change(path=path, kind="M", data=read.data))
        return found

    def _was(self, kept: int, edited: dict[str, bytes], path: str) -> bytes | None:
        """The file's bytes before the command: the agent's edit, else the commit's file."""
        key = self.req.overlay.get(path)
        if key is not None:
            return edited.get(key)
        read = _safefs.read_file(kept, path, MAX_KEPT_FILE_BYTES + 1)
        return None if read is None else read.data

    async def _not_run(self, why: str, limits: SandboxLimits, install: InstallReport | None = None) -> CommandResult:
        text = f"$ {self.req.command}\nnot run: {why}"
        if install is not None:
            text += (
                f"\n\ninstall step ({' '.join(install.command)}), exit code {install.exit_code}:\n{install.output_tail}"
            )
        fields = {"status": "not_run", "install": install, "limits": limits}
        return await self._result(text, f"not run: {why}", fields)

    async def _result(self, text: str, preview: str, fields: dict[str, Any]) -> CommandResult:
        """The result, its text (secrets' shapes redacted) in the blob store under `content_key`."""
        shown = redact(text)
        key = await self.blobs.put_async(shown.encode("utf-8", "surrogatepass"))
        result = CommandResult.model_validate({**fields, "preview": redact(preview)[:300], "content_key": key})
        record_command(result.status, result.exit_code, result.duration_seconds)
        log.info(
            "command",
            status=result.status,
            exit_code=result.exit_code,
            seconds=result.duration_seconds,
            changed_files=len(result.changes) + len(result.removed_edits),
            output_bytes=result.output_bytes,
        )
        return result


@dataclass
class _Found:
    """What a command changed: kept (new contents, or a deletion of a commit's file), the agent's own
    files it deleted, and what was not kept and why."""

    changes: list[Change] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    not_kept: list[NotKept] = field(default_factory=list)


def _end(finished: Finished, limits: SandboxLimits) -> CommandEnd:
    return CommandEnd(
        exit_code=finished.exit_code,
        stopped_for=finished.stopped_for,
        oom_kills=finished.usage.oom_kills,
        process_limit_hits=finished.usage.process_limit_hits,
        output_limit_hit=finished.output_bytes >= limits.output_bytes or finished.exit_code in KILLED_BY_FILE_SIZE,
        limits=limits,
    )


def _read_output(log_file: Path) -> Output:
    """The head and tail of the command's console log (a file in the host folder no sandbox sees)."""
    fd = os.open(log_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(fd).st_size
        if size <= HEAD_BYTES + TAIL_BYTES:
            return Output(f.read(), b"", size)
        head = f.read(HEAD_BYTES)
        f.seek(size - TAIL_BYTES)
        return Output(head, f.read(TAIL_BYTES), size)
