"""The `run_tests` activity (task queue forgeflow-sandbox): a commit's tests under bubblewrap.

The commit is exported with `git archive` into a fresh directory (the user's work tree is never
touched) and the agent's overlay laid on top; the install step runs (or comes from the cache),
then the detected or configured runner, which writes JUnit XML. The report is parsed from that
file — never guessed from console text — and a limit the run hit is named in its status.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import _install, _runners
from activities._bwrap import HOSTS_FILE, OUT, WORKSPACE, Mount, bwrap_argv, sandbox_env
from activities._commit_cache import mapping_ref
from activities._limited import Finished, WeakLimitsError, run_limited
from activities._report import RunFiles, build_report, error_report
from activities.blobstore import BlobStore
from config.settings import Settings
from contracts.testing import RunTestsInput, SandboxLimits, TestReport
from policy.paths import repo_path
from telemetry.instrument import operation

PROXY_PORT = 3128
FORWARDER = Path(__file__).with_name("_forwarder.py")
LAUNCHER_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}  # bwrap itself: nothing secret


class Workspace:
    """The exported commit on disk, read through the two callables detection needs."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def paths(self) -> list[str]:
        return [
            str(p.relative_to(self.root))
            for p in self.root.rglob("*")
            if p.is_file() and "node_modules" not in p.parts and ".git" not in p.parts
        ]

    def read(self, path: str) -> str | None:
        try:
            return (self.root / path).read_text(encoding="utf-8", errors="replace")
        except (OSError, ValueError):
            return None


class SandboxActivities:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._blobs = BlobStore(settings.blob_dir)

    @activity.defn(name="run_tests")
    async def run_tests(self, req: RunTestsInput) -> TestReport:
        bwrap = self._bwrap()
        with tempfile.TemporaryDirectory(prefix="forgeflow-test-") as tmp:
            workspace, out_dir = Path(tmp) / "workspace", Path(tmp) / "out"
            workspace.mkdir()
            out_dir.mkdir()
            async with operation("sandbox", "run_tests") as outcome:
                await _export(req.repo_path, req.commit_sha, workspace)
                _apply_overlay(workspace, req.overlay, self._blobs)
                report = await _Run(self._settings, bwrap, req, Workspace(workspace), out_dir).run()
                outcome.attributes = {
                    "forgeflow.tests.status": report.status,
                    "forgeflow.tests.total": report.total,
                    "forgeflow.tests.failed": report.failed + report.errors,
                    "forgeflow.tests.runner": report.runner or "none",
                }
                return report

    def _bwrap(self) -> str | None:
        bwrap = shutil.which(self._settings.sandbox_bwrap)
        if bwrap is None and not self._settings.allow_unsandboxed_tests:
            raise ApplicationError(
                f"bubblewrap ({self._settings.sandbox_bwrap}) is not installed on this sandbox worker, so tests "
                "cannot run isolated; install Debian's bubblewrap package, then answer the escalation to retry "
                "(or set FORGEFLOW_ALLOW_UNSANDBOXED=1 to accept the risk)",
                type="SandboxUnavailable",
                non_retryable=True,
            )
        return bwrap


class _Run:
    """One run_tests call: install step, test step, report."""

    def __init__(
        self, settings: Settings, bwrap: str | None, req: RunTestsInput, workspace: Workspace, out_dir: Path
    ) -> None:
        self.settings, self.bwrap, self.req, self.ws, self.out_dir = settings, bwrap, req, workspace, out_dir
        self.prefixes = list(dict.fromkeys([sys.base_prefix, sys.prefix]))
        self.hosts = out_dir.parent / "hosts"

    async def run(self) -> TestReport:
        limits = self.settings.sandbox_limits(self.req.timeout_seconds)
        self.hosts.write_text(HOSTS_FILE)
        try:
            config = _runners.load_config(self.ws.read(_runners.CONFIG_FILE))
        except _runners.RepoConfigError as err:
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
            cache_dir=self.settings.sandbox_cache_dir,
            key=_install.cache_key(install_command or [], paths, self.ws.read, _install.toolchain()),
            python_env=plan.runner not in _runners.JS_RUNNERS,
            network=self.settings.sandbox_install_network,
            run_step=self._install_step,
        )
        if prepared.failed:
            return error_report(self.req.commit_sha, limits, "the install step failed", prepared.report)
        started = time.monotonic()
        finished = await self._step(plan.command, prepared.mounts, plan.env, self.out_dir / "output.log", limits)
        return build_report(
            self.req.commit_sha,
            plan,
            finished,
            limits,
            RunFiles(workspace=self.ws.root, out_dir=self.out_dir),
            seconds=time.monotonic() - started,
            install=prepared.report,
            unsandboxed=self.bwrap is None,
        )

    async def _step(
        self, command: list[str], mounts: list[Mount], env: dict[str, str], log: Path, limits: SandboxLimits
    ) -> Finished:
        mounts = [
            Mount(source=str(self.ws.root), target=WORKSPACE, writable=True),
            Mount(source=str(self.out_dir), target=OUT, writable=True),
            *mounts,
        ]
        if self.bwrap is None:  # the operator allowed unsandboxed runs: same command, no isolation
            local = [a.replace(OUT, str(self.out_dir)) for a in command]
            local_env = {k: v.replace(OUT, str(self.out_dir)) for k, v in env.items()}
            argv = ["env", "-C", str(self.ws.root), *local]
            return await self._limited(
                argv, log, limits, {**LAUNCHER_ENV, **local_env, "PYTHONPATH": str(self.ws.root)}
            )
        inner = sandbox_env(self.prefixes, env)
        argv = bwrap_argv(
            self.bwrap, mounts=mounts, python_prefixes=self.prefixes, command=command, env=inner, hosts=self.hosts
        )
        return await self._limited(argv, log, limits, LAUNCHER_ENV)

    async def _limited(self, argv: list[str], log: Path, limits: SandboxLimits, env: dict[str, str]) -> Finished:
        try:
            return await run_limited(
                argv,
                log,
                limits,
                env,
                cgroup_root=self.settings.sandbox_cgroup_root,
                allow_weak_limits=self.settings.sandbox_weak_limits,
            )
        except WeakLimitsError as err:
            raise ApplicationError(str(err), type="SandboxUnavailable", non_retryable=True) from None

    async def _install_step(
        self, command: list[str], mounts: list[Mount], env: dict[str, str], log: Path, network: bool
    ) -> Finished:
        limits = self.settings.sandbox_limits(self.settings.sandbox_install_timeout)
        if not network:
            return await self._step(command, mounts, env, log, limits)
        from activities._registry_proxy import registry_proxy

        socket = self.out_dir / "registry.sock"
        proxy = f"http://127.0.0.1:{PROXY_PORT}"
        env = {**env, **{k: proxy for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")}}
        env |= {"npm_config_proxy": proxy, "npm_config_https_proxy": proxy}
        mounts = [*mounts, Mount(source=str(FORWARDER), target="/forgeflow-bin/forwarder.py")]
        wrapped = [sys.executable, "/forgeflow-bin/forwarder.py", f"{OUT}/registry.sock", str(PROXY_PORT), "--"]
        async with registry_proxy(socket, self.settings.sandbox_registries):
            return await self._step([*wrapped, *command], mounts, env, log, limits)


def _apply_overlay(workspace: Path, overlay: dict[str, str | None], blobs: BlobStore) -> None:
    """Lay the agent's uncommitted files over the exported commit (paths were checked when written)."""
    for raw, key in overlay.items():
        target = workspace / repo_path(raw)
        if key is None:
            target.unlink(missing_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blobs.get(key))


async def _export(repo: str, sha: str, into: Path) -> None:
    data, err, code = await _archive(repo, f"{sha}^{{commit}}")
    if code != 0:  # a remote commit: the worker's cache maps it to a local one
        data, _, code = await _archive(repo, mapping_ref(sha))
    if code != 0:
        raise ApplicationError(
            f"commit {sha} not found in {repo}: {err.decode(errors='replace').strip()}",
            type="CommitNotFound",
            non_retryable=True,
        )
    untar = await asyncio.create_subprocess_exec("tar", "-x", "-C", str(into), stdin=subprocess.PIPE)
    await untar.communicate(data)
    if untar.returncode != 0:
        raise ApplicationError(f"could not unpack commit {sha}", type="ExportFailed")


async def _archive(repo: str, ref: str) -> tuple[bytes, bytes, int | None]:
    proc = await asyncio.create_subprocess_exec(
        "git", "-C", repo, "archive", "--format=tar", ref, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await proc.communicate()
    return out, err, proc.returncode
