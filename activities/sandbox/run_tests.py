"""The `run_tests` activity (task queue forgeflow-sandbox): a commit's tests, isolated.

The commit's files are fetched from the object store by tree id (activities.trees: the code host
uploaded them when the run read or made the commit) into a fresh directory, never through a link,
and the agent's overlay laid on top; the install step runs (or comes from the cache),
then the detected or configured runner, which writes JUnit XML; each step runs under the worker's
isolation backend (activities.sandbox.backends chooses it). The report is parsed from that
file — never guessed from console text — and a limit the run hit is named in its status.

Everything in the workspace copy is untrusted (the repository committed it, or sandboxed code wrote
it), so the worker touches it only through activities.sandbox._safefs: no link is ever followed. Each run
has three folders: `workspace` and `out` (both visible to the sandbox) and `host` (console logs and
the hosts file), which no sandbox sees.
"""

from __future__ import annotations

import asyncio
import importlib.util
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities._heartbeat import heartbeats
from activities.blobstore import BlobStore
from activities.sandbox import _install, _runners, _safefs
from activities.sandbox._layout import HOSTS_FILE, OUT, Mount
from activities.sandbox._limited import Finished, WeakLimitsError, run_limited
from activities.sandbox._report import RunFiles, build_report, error_report, first_line
from activities.sandbox._unpack import unpack_tree
from activities.sandbox.backend import BackendOptions, IsolationBackend, Step
from activities.sandbox.backends import select_backend
from activities.trees import TreeArchiveError, TreeArchives, TreeMissing
from contracts.testing import RunTestsInput, SandboxLimits, TestReport
from policy.paths import UnsafePathError, repo_path
from policy.repo_config import CONFIG_FILE, RepoConfigError, load_config
from telemetry.instrument import operation

PROXY_PORT = 3128
FORWARDER = Path(__file__).with_name("_forwarder.py")
MAX_READ = 1024**2  # a configuration file or manifest the worker reads from the workspace


class Workspace:
    """The exported commit on disk, read without following links (see activities.sandbox._safefs)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def paths(self) -> list[str]:
        """The workspace's regular files (links are content, not files to read)."""
        return _safefs.regular_files(self.root, skip=frozenset({"node_modules", ".git"}))

    def read(self, path: str) -> str | None:
        """A regular file's text, at most MAX_READ bytes; None if absent, a link, or not a file."""
        with _safefs.root(self.root) as fd:
            return _safefs.read_text(fd, path, MAX_READ)

    def config_text(self) -> str | None:
        """`.forgeflow.yml`, which must be a regular file: a link is refused, never followed."""
        with _safefs.root(self.root) as fd:
            found = _safefs.lstat(fd, CONFIG_FILE)
            if found is not None and not stat.S_ISREG(found.st_mode):
                raise RepoConfigError(
                    f"{CONFIG_FILE} must be a regular file; it is a symbolic link or another kind of "
                    "file, and was not read"
                )
            return _safefs.read_text(fd, CONFIG_FILE, MAX_READ)


@dataclass(frozen=True)
class SandboxConfig:
    """What a sandbox worker is configured with. The worker builds it from its Settings (the
    FORGEFLOW_SANDBOX_* variables), so this module reads values and never the settings object."""

    blobs: BlobStore  # the overlay's contents, on the run's object store
    trees: TreeArchives  # the commits under test, on the same store
    cache_dir: Path  # installed dependencies, one directory per manifest/lockfile hash
    cache_max_bytes: int  # cache_dir's bound: the least recently used entries go past it
    isolation: BackendOptions  # which backends may run the steps (activities.sandbox.backends)
    limits: Callable[[int], SandboxLimits]  # a step's limits for its wall-clock seconds
    install_timeout: int
    install_network: bool
    registries: tuple[str, ...]
    cgroup_root: Path
    weak_limits: bool


class SandboxActivities:
    def __init__(self, config: SandboxConfig) -> None:
        self._config = config
        self._blobs = config.blobs

    @activity.defn(name="run_tests")
    @heartbeats  # from the start: exporting a large commit takes seconds before the tests run
    async def run_tests(self, req: RunTestsInput) -> TestReport:
        backend = select_backend(self._config.isolation)  # each run: an operator may install one meanwhile
        with tempfile.TemporaryDirectory(prefix="forgeflow-test-") as tmp:
            workspace, out_dir, host_dir = Path(tmp) / "workspace", Path(tmp) / "out", Path(tmp) / "host"
            for folder in (workspace, out_dir, host_dir):
                folder.mkdir(mode=0o700)
            async with operation("sandbox", "run_tests") as outcome:
                await self._checkout(req, workspace)
                edited = await self._blobs.get_many_async(key for key in req.overlay.values() if key is not None)
                refused = _apply_overlay(workspace, req.overlay, edited)
                limits = self._config.limits(req.timeout_seconds)
                report = (
                    error_report(req.commit_sha, limits, refused)
                    if refused is not None
                    else await _Run(self._config, backend, req, Workspace(workspace), out_dir, host_dir).run(limits)
                )
                outcome.attributes = {
                    "forgeflow.tests.status": report.status,
                    "forgeflow.tests.total": report.total,
                    "forgeflow.tests.failed": report.failed + report.errors,
                    "forgeflow.tests.runner": report.runner or "none",
                }
                return report

    async def _checkout(self, req: RunTestsInput, workspace: Path) -> None:
        """The commit's files, fetched from the object store by tree id, into the empty `workspace`."""
        if req.tree is None:
            raise ApplicationError(
                f"run_tests for {req.commit_sha[:12]} names no tree: this run was started by a forgeflow that "
                "gave the sandbox a repository path, and the sandbox now reads commits only from the object "
                "store. Start the run again.",
                type="TreeNotGiven",
                non_retryable=True,
            )
        try:
            archive = await self._config.trees.get(req.tree)
        except TreeMissing as err:  # retryable: another sandbox worker may be on the right store
            raise ApplicationError(f"{err}; workers must share FORGEFLOW_STORAGE_URL", type="TreeMissing") from None
        try:
            await asyncio.to_thread(unpack_tree, archive, workspace)
        except TreeArchiveError as err:
            raise ApplicationError(
                f"the archive of tree {req.tree} is damaged: {err}", type="BadTreeArchive", non_retryable=True
            ) from None


class _Run:
    """One run_tests call: install step, test step, report."""

    def __init__(
        self,
        config: SandboxConfig,
        backend: IsolationBackend,
        req: RunTestsInput,
        workspace: Workspace,
        out_dir: Path,
        host_dir: Path,
    ) -> None:
        self.config, self.backend, self.req, self.ws, self.out_dir = config, backend, req, workspace, out_dir
        self.host_dir = host_dir  # logs and the hosts file: never visible to a sandbox
        self.prefixes = list(dict.fromkeys([sys.base_prefix, sys.prefix]))
        self.hosts = host_dir / "hosts"

    async def run(self, limits: SandboxLimits) -> TestReport:
        self.hosts.write_text(HOSTS_FILE)
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
            coverage=importlib.util.find_spec("pytest_cov") is not None,
        )
        prepared = await _install.prepare(
            command=install_command,
            workspace=self.ws.root,
            cache_dir=self.config.cache_dir,
            key=_install.cache_key(
                install_command or [], paths, self.ws.read, _install.toolchain(), repository=self.req.repository
            ),
            python_env=plan.runner not in _runners.JS_RUNNERS,
            network=self.config.install_network,
            run_step=self._install_step,
            log_dir=self.host_dir,
            max_bytes=self.config.cache_max_bytes,
        )
        if prepared.failed:
            return error_report(self.req.commit_sha, limits, "the install step failed", prepared.report)
        started = time.monotonic()
        log = self.host_dir / "test.log"
        finished = await self._step(plan.command, prepared.mounts, plan.env, log, limits)
        return build_report(
            self.req.commit_sha,
            plan,
            finished,
            limits,
            RunFiles(known_files=frozenset(paths), out_dir=self.out_dir, log=log),
            seconds=time.monotonic() - started,
            install=prepared.report,
            unsandboxed=not self.backend.isolates,
        )

    async def _step(
        self,
        command: list[str],
        mounts: list[Mount],
        env: dict[str, str],
        log: Path,
        limits: SandboxLimits,
        out_dir: Path | None = None,
        what: str = "test runner",
    ) -> Finished:
        """One sandboxed step; `out_dir` (default: the test step's report folder) is seen at OUT.
        SandboxUnavailable if the backend could not start it (`what` names it in the message)."""
        step = Step(
            command=command,
            env=env,
            mounts=mounts,
            workspace=self.ws.root,
            out_dir=out_dir or self.out_dir,
            hosts=self.hosts,
            python_prefixes=self.prefixes,
        )
        launch = self.backend.launch(step)
        finished = await self._limited(launch.argv, log, limits, launch.env)
        failure = self.backend.launch_failure(finished.exit_code, first_line(log))
        if failure is not None:  # nothing ran: no report to give the agents, and retrying changes nothing
            raise ApplicationError(
                f"the sandbox could not start the {what}: {failure}", type="SandboxUnavailable", non_retryable=True
            )
        return finished

    async def _limited(self, argv: list[str], log: Path, limits: SandboxLimits, env: dict[str, str]) -> Finished:
        try:
            return await run_limited(
                argv,
                log,
                limits,
                env,
                cgroup_root=self.config.cgroup_root,
                allow_weak_limits=self.config.weak_limits,
            )
        except WeakLimitsError as err:
            raise ApplicationError(str(err), type="SandboxUnavailable", non_retryable=True) from None

    async def _install_step(
        self, command: list[str], mounts: list[Mount], env: dict[str, str], log: Path, network: bool
    ) -> Finished:
        limits = self.config.limits(self.config.install_timeout)
        # Its own report folder: nothing the install step leaves there can pass for the test step's report.
        out_dir = self.host_dir.parent / "install-out"
        out_dir.mkdir(mode=0o700)
        if not network:
            return await self._step(command, mounts, env, log, limits, out_dir, "install step")
        from activities.sandbox._registry_proxy import registry_proxy

        socket = out_dir / "registry.sock"  # the proxy binds it before the sandbox starts
        proxy = f"http://127.0.0.1:{PROXY_PORT}"
        env = {**env, **{k: proxy for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")}}
        env |= {"npm_config_proxy": proxy, "npm_config_https_proxy": proxy}
        mounts = [*mounts, Mount(source=str(FORWARDER), target="/forgeflow-bin/forwarder.py")]
        wrapped = [sys.executable, "/forgeflow-bin/forwarder.py", f"{OUT}/registry.sock", str(PROXY_PORT), "--"]
        async with registry_proxy(socket, self.config.registries):
            return await self._step([*wrapped, *command], mounts, env, log, limits, out_dir, "install step")


def _apply_overlay(workspace: Path, overlay: dict[str, str | None], contents: Mapping[str, bytes]) -> str | None:
    """Lay the agent's uncommitted files (`contents`: each blob key's bytes, fetched beforehand) over the
    exported commit, never through a link the commit holds (a link at a written path is replaced by
    the file). Returns why it could not, or None."""
    with _safefs.root(workspace) as root:
        for raw, key in sorted(overlay.items()):
            try:
                path = repo_path(raw)
                if key is None:
                    _safefs.delete(root, path)
                else:
                    _safefs.write_file(root, path, contents[key])
            except (UnsafePathError, _safefs.UnsafeTreeError) as err:
                return f"the change to {raw!r} was not applied: {err}"
            except IsADirectoryError:
                return f"the change to {raw!r} was not applied: the commit has a folder there"
    return None
