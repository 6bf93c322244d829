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
import xml.etree.ElementTree as ET
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import _install, _junit, _runners
from activities._bwrap import HOSTS_FILE, OUT, WORKSPACE, Mount, bwrap_argv, sandbox_env
from activities._commit_cache import mapping_ref
from activities._limited import Finished, WeakLimitsError, run_limited
from activities.blobstore import BlobStore
from config.settings import Settings
from contracts.testing import RunTestsInput, SandboxLimits, TestReport
from policy.paths import repo_path
from policy.test_status import RunEnd, test_status
from telemetry.instrument import operation

OUTPUT_TAIL = 20_000
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

    async def run(self) -> TestReport:
        limits = self.settings.sandbox_limits(self.req.timeout_seconds)
        try:
            config = _runners.load_config(self.ws.read(_runners.CONFIG_FILE))
        except _runners.RepoConfigError as err:
            return self._error(limits, str(err))
        install_command = self.req.install_command or config.test.install
        python = sys.executable
        plan = _runners.choose(
            run_command=self.req.test_command,
            config=config,
            paths=self.ws.paths(),
            read=self.ws.read,
            python="python" if install_command else python,
            coverage=importlib.util.find_spec("pytest_cov") is not None,
        )
        prepared = await _install.prepare(
            command=install_command,
            workspace=self.ws.root,
            cache_dir=self.settings.sandbox_cache_dir,
            key=_install.cache_key(install_command or [], self.ws.paths(), self.ws.read),
            python_env=plan.runner not in ("node", "vitest", "jest"),
            network=self.settings.sandbox_install_network,
            run_step=self._install_step,
        )
        if prepared.failed:
            return self._error(limits, "the install step failed", install=prepared.report)
        started = time.monotonic()
        finished = await self._step(plan.command, prepared.mounts, plan.env, self.out_dir / "output.log", limits)
        return self._report(plan, finished, limits, time.monotonic() - started, prepared)

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
        hosts = self.out_dir.parent / "hosts"
        hosts.write_text(HOSTS_FILE)
        argv = bwrap_argv(
            self.bwrap, mounts=mounts, python_prefixes=self.prefixes, command=command, env=inner, hosts=hosts
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

    def _base(self, limits: SandboxLimits, **fields: object) -> dict[str, object]:
        return {"commit_sha": self.req.commit_sha, "limits": limits, **fields}

    def _error(self, limits: SandboxLimits, why: str, **fields: object) -> TestReport:
        return TestReport.model_validate(self._base(limits, command=[], status="error", output_tail=why, **fields))

    def _report(
        self,
        plan: _runners.RunnerPlan,
        finished: Finished,
        limits: SandboxLimits,
        seconds: float,
        prepared: _install.Prepared,
    ) -> TestReport:
        counts = self._counts(plan)
        tail = _tail(self.out_dir / "output.log")
        end = RunEnd(
            exit_code=finished.exit_code,
            stopped_for=finished.stopped_for,
            oom_kills=finished.usage.oom_kills,
            memory_error=finished.enforced_by == "rlimit" and "MemoryError" in tail,
            process_limit_hits=finished.usage.process_limit_hits,
            output_limit_hit=finished.output_bytes >= limits.output_bytes,
            report_found=counts is not None,
            total=counts.total if counts else 0,
            failed=counts.failed if counts else 0,
            errors=counts.errors if counts else 0,
        )
        status = test_status(end)
        coverage = self.out_dir / "coverage.xml"
        return TestReport.model_validate(
            self._base(
                limits,
                command=plan.command,
                runner=plan.runner,
                status=status,
                exit_code=finished.exit_code,
                duration_seconds=round(seconds, 3),
                output_tail=_why(status, end, limits, self.bwrap is None) + tail,
                coverage_percent=_junit.parse_coverage(coverage.read_text()) if coverage.exists() else None,
                install=prepared.report,
                limits_enforced_by=finished.enforced_by,
                cpu_seconds=round(finished.usage.cpu_seconds, 3) if finished.enforced_by == "cgroup" else None,
                peak_memory_bytes=finished.usage.peak_memory_bytes,
                **(
                    {
                        "total": counts.total,
                        "passed": counts.passed,
                        "failed": counts.failed,
                        "errors": counts.errors,
                        "skipped": counts.skipped,
                        "failures": counts.failures,
                    }
                    if counts
                    else {}
                ),
            )
        )

    def _counts(self, plan: _runners.RunnerPlan) -> _junit.JUnitCounts | None:
        """The runner's own report, parsed; None if it wrote none (or one that can't be read)."""
        jest, junit = self.out_dir / "jest.json", self.out_dir / "junit.xml"
        try:
            if plan.runner == "jest" and jest.exists():
                return _junit.parse_jest(jest.read_text(errors="replace"), WORKSPACE)
            if junit.exists():
                return _junit.parse_junit(junit.read_text(errors="replace"), self._namer(plan))
        except (ValueError, ET.ParseError):
            return None
        return None

    def _namer(self, plan: _runners.RunnerPlan) -> _junit.Namer:
        def is_file(path: str) -> bool:
            return (self.ws.root / path).is_file()

        if plan.runner == "node":
            return _junit.node_namer
        if plan.runner == "vitest":
            return _junit.vitest_namer
        if plan.runner == "unittest":
            return _junit.unittest_namer(is_file)
        return _junit.pytest_namer(is_file)


def _why(status: str, end: RunEnd, limits: SandboxLimits, unsandboxed: bool) -> str:
    """A first line saying which limit stopped the run, if one did."""
    lines = ["UNSANDBOXED RUN (operator allowed)"] if unsandboxed else []
    if status == "timed_out":
        if end.stopped_for == "cpu_time":
            lines.append(f"killed: used more than {limits.cpu_seconds} s of CPU time")
        else:
            lines.append(f"killed after the {limits.wall_seconds} s timeout")
    elif status == "out_of_memory":
        lines.append(f"ran out of memory (limit {limits.memory_bytes // 1024**2} MiB)")
    elif status == "too_many_processes":
        lines.append(f"hit the limit of {limits.max_processes} processes")
    elif status == "too_much_output":
        lines.append(f"stopped at the output limit of {limits.output_bytes // 1024**2} MiB")
    elif not end.report_found:
        lines.append(f"the runner wrote no JUnit report (exit code {end.exit_code})")
    return "".join(f"{line}\n" for line in lines)


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


def _tail(log: Path) -> str:
    data = b""
    if log.exists():
        with log.open("rb") as f:
            f.seek(max(0, log.stat().st_size - OUTPUT_TAIL))
            data = f.read()
    text = data.decode("utf-8", errors="replace")
    return text if not log.exists() or log.stat().st_size <= OUTPUT_TAIL else "…" + text
