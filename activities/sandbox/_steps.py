"""What the sandbox activities share: the worker's configuration, a run's folders, the workspace copy
read without following links, the agent's overlay laid on it, and one step run isolated.

Everything in the workspace copy is untrusted (the repository committed it, or sandboxed code wrote
it), so the worker touches it only through activities.sandbox._safefs: no link is ever followed. Each
run has three folders: `workspace` and `out` (both visible to the sandbox) and `host` (console logs and
the hosts file), which no sandbox sees.
"""

from __future__ import annotations

import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from temporalio.exceptions import ApplicationError

from activities.blobstore import BlobStore
from activities.sandbox import _install, _runners, _safefs
from activities.sandbox._layout import HOSTS_FILE, OUT, Mount
from activities.sandbox._limited import Finished, WeakLimitsError, run_limited
from activities.sandbox._report import first_line
from activities.sandbox._tools import worker_tool_sites
from activities.sandbox.backend import BackendOptions, IsolationBackend, Step
from activities.trees import TreeArchiveError, TreeArchives, TreeMissing
from contracts.testing import SandboxLimits
from policy.paths import UnsafePathError, repo_path
from policy.repo_config import CONFIG_FILE, RepoConfigError

PROXY_PORT = 3128
FORWARDER = Path(__file__).with_name("_forwarder.py")
MAX_READ = 1024**2  # a configuration file or manifest the worker reads from the workspace


@dataclass(frozen=True)
class SandboxConfig:
    """What a sandbox worker is configured with. The worker builds it from its Settings (the
    FORGEFLOW_SANDBOX_* variables), so this module reads values and never the settings object."""

    blobs: BlobStore  # the overlay's contents, on the run's object store
    trees: TreeArchives  # the commits under test, on the same store
    cache_dir: Path  # installed dependencies, one directory per manifest/lockfile hash
    cache_max_bytes: int  # cache_dir's bound (and trees_dir's): the least recently used entries go past it
    isolation: BackendOptions  # which backends may run the steps (activities.sandbox.backends)
    limits: Callable[[int], SandboxLimits]  # a step's limits for its wall-clock seconds
    install_timeout: int
    install_network: bool
    registries: tuple[str, ...]
    cgroup_root: Path
    weak_limits: bool
    trees_dir: Path  # commits kept unpacked, and their working copies, for commands (activities.sandbox._prepared)


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
class Folders:
    """One run's folders under a fresh temporary directory."""

    workspace: Path  # seen by the sandbox at WORKSPACE
    out: Path  # seen by the sandbox at OUT
    host: Path  # console logs and the hosts file: never visible to a sandbox

    @classmethod
    def make(cls, tmp: Path, workspace: Path | None = None) -> Folders:
        """The run's folders under `tmp`; the workspace there too, unless one is given."""
        folders = cls(workspace or tmp / "workspace", tmp / "out", tmp / "host")
        for folder in (folders.out, folders.host) if workspace else (folders.workspace, folders.out, folders.host):
            folder.mkdir(mode=0o700)
        (folders.host / "hosts").write_text(HOSTS_FILE)
        return folders


async def fetch_tree(trees: TreeArchives, tree: str | None, commit_sha: str) -> bytes:
    """The archive of a commit's tree from the object store, or the ApplicationError that says why not."""
    if tree is None:
        raise ApplicationError(
            f"the sandbox was asked to run on {commit_sha[:12]} without its tree: this run was started by a "
            "forgeflow that gave the sandbox a repository path, and the sandbox now reads commits only from "
            "the object store. Start the run again.",
            type="TreeNotGiven",
            non_retryable=True,
        )
    try:
        return await trees.get(tree)
    except TreeMissing as err:  # retryable: another sandbox worker may be on the right store
        raise ApplicationError(f"{err}; workers must share FORGEFLOW_STORAGE_URL", type="TreeMissing") from None


def damaged(tree: str, err: TreeArchiveError) -> ApplicationError:
    return ApplicationError(f"the archive of tree {tree} is damaged: {err}", type="BadTreeArchive", non_retryable=True)


def apply_overlay(workspace: Path, overlay: dict[str, str | None], contents: Mapping[str, bytes]) -> str | None:
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


class Stepper:
    """Runs the steps of one sandbox run under the worker's isolation backend and limits."""

    def __init__(self, config: SandboxConfig, backend: IsolationBackend, folders: Folders) -> None:
        self.config, self.backend, self.folders = config, backend, folders
        self.prefixes = list(dict.fromkeys([sys.base_prefix, sys.prefix]))
        self.tool_sites = worker_tool_sites()

    async def step(
        self,
        command: list[str],
        mounts: list[Mount],
        env: dict[str, str],
        log: Path,
        limits: SandboxLimits,
        out_dir: Path | None = None,
        what: str = "test runner",
    ) -> Finished:
        """One sandboxed step; `out_dir` (default: the run's report folder) is seen at OUT.
        SandboxUnavailable if the backend could not start it (`what` names it in the message)."""
        step = Step(
            command=command,
            env=env,
            mounts=mounts,
            workspace=self.folders.workspace,
            out_dir=out_dir or self.folders.out,
            hosts=self.folders.host / "hosts",
            python_prefixes=self.prefixes,
            tool_sites=self.tool_sites,
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

    async def install(
        self, workspace: Workspace, command: list[str] | None, paths: list[str], runner: str, repository: str
    ) -> _install.Prepared:
        """The install step's environment for `workspace` (its files: `paths`), from the cache run_tests and
        run_command share: one key per repository, command, manifests and toolchain, so a commit
        installs once whichever asks first."""
        return await _install.prepare(
            command=command,
            workspace=workspace.root,
            cache_dir=self.config.cache_dir,
            key=_install.cache_key(command or [], paths, workspace.read, _install.toolchain(), repository=repository),
            python_env=runner not in _runners.JS_RUNNERS,
            network=self.config.install_network,
            run_step=self.install_step,
            log_dir=self.folders.host,
            max_bytes=self.config.cache_max_bytes,
        )

    async def install_step(
        self, command: list[str], mounts: list[Mount], env: dict[str, str], log: Path, network: bool
    ) -> Finished:
        """The dependency install step (activities.sandbox._install.RunStep): behind the registry proxy
        when the operator lets it reach the registries, else with no network at all."""
        limits = self.config.limits(self.config.install_timeout)
        # Its own report folder: nothing the install step leaves there can pass for a later step's report.
        out_dir = self.folders.host.parent / "install-out"
        out_dir.mkdir(mode=0o700)
        if not network:
            return await self.step(command, mounts, env, log, limits, out_dir, "install step")
        from activities.sandbox._registry_proxy import registry_proxy

        socket = out_dir / "registry.sock"  # the proxy binds it before the sandbox starts
        proxy = f"http://127.0.0.1:{PROXY_PORT}"
        env = {**env, **{k: proxy for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")}}
        env |= {"npm_config_proxy": proxy, "npm_config_https_proxy": proxy}
        mounts = [*mounts, Mount(source=str(FORWARDER), target="/forgeflow-bin/forwarder.py")]
        wrapped = [sys.executable, "/forgeflow-bin/forwarder.py", f"{OUT}/registry.sock", str(PROXY_PORT), "--"]
        async with registry_proxy(socket, self.config.registries):
            return await self.step([*wrapped, *command], mounts, env, log, limits, out_dir, "install step")
