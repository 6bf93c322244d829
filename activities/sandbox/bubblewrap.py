"""The bubblewrap backend: each step in fresh namespaces, and how bubblewrap says it could not start
one. `bwrap_argv`, `interpreter_paths` and `launch_failure` are pure: paths in, argv out.

Inside: an unprivileged user (nobody, no capabilities) in its own user, PID, IPC, UTS and network
namespaces; the exported commit read-write at /workspace, a directory for reports at
/forgeflow-out, the interpreter and system libraries read-only, a private /tmp, and only the
environment variables set here. The network namespace is empty (not even the host's loopback)
unless `share_net` is set, which only the install step gets, and only behind the registry proxy.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import ClassVar

from activities.sandbox._layout import OUT, WORKSPACE, Mount, sandbox_env
from activities.sandbox._tools import ToolSite
from activities.sandbox.backend import LAUNCHER_ENV, BackendOptions, Launch, Step, Unavailable

SANDBOX_UID = 65534  # nobody
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64")
ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/localtime",
    "/etc/alternatives",
    "/etc/ssl/certs",
    "/etc/ca-certificates",
)


OWN_PATHS = ("/tmp", "/proc", "/dev")  # the sandbox's own: a private /tmp, its processes, its devices
PREFIX_PARTS = ("bin", "lib", "lib64", "include", "pyvenv.cfg")  # what an interpreter needs of its prefix
LAUNCH_FAILED = 1  # bubblewrap's exit code when it fails before (or at) running the command


@dataclass(frozen=True)
class Bubblewrap:
    """Steps under the bubblewrap at `program` (an absolute path, found once per run)."""

    program: str
    isolates: ClassVar[bool] = True

    def launch(self, step: Step) -> Launch:
        mounts = [
            Mount(source=str(step.workspace), target=WORKSPACE, writable=True),
            Mount(source=str(step.out_dir), target=OUT, writable=True),
            *step.mounts,
        ]
        argv = bwrap_argv(
            self.program,
            mounts=mounts,
            python_prefixes=step.python_prefixes,
            tool_sites=step.tool_sites,
            command=step.command,
            env=sandbox_env(step.python_prefixes, step.env),
            hosts=step.hosts,
        )
        return Launch(argv=argv, env=dict(LAUNCHER_ENV))  # bwrap itself: nothing secret

    def launch_failure(self, exit_code: int | None, first_line: str) -> str | None:
        return launch_failure(exit_code, first_line)


def find(options: BackendOptions) -> Bubblewrap | Unavailable:
    """bubblewrap where the operator configured it, or why it cannot be used."""
    program = shutil.which(options.bwrap, path=options.search_path)
    if program is None:
        return Unavailable(
            f"bubblewrap ({options.bwrap}) is not installed on this sandbox worker, so tests cannot run isolated; "
            "install Debian's bubblewrap package, then answer the escalation to retry"
        )
    return Bubblewrap(program)


def bwrap_argv(
    bwrap: str,
    *,
    mounts: Sequence[Mount],
    python_prefixes: Sequence[str],
    command: Sequence[str],
    env: Mapping[str, str],
    share_net: bool = False,
    hosts: Path | None = None,
    tool_sites: Sequence[ToolSite] = (),
    exists: Callable[[str], bool] | None = None,
) -> list[str]:
    """The argv; `exists` (for tests) decides which optional host paths to bind."""
    present = exists or (lambda p: Path(p).exists())
    argv = [bwrap, "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    argv += ["--cap-drop", "ALL", "--die-with-parent", "--new-session", "--hostname", "forgeflow-sandbox"]
    if share_net:
        argv.append("--share-net")
    for path in [*SYSTEM_DIRS, *ETC_FILES]:
        if present(path):
            argv += ["--ro-bind", path, path]
    argv += ["--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev"]
    owned = [*OWN_PATHS]
    if hosts is not None:  # `localhost` resolves (test servers bind it); nothing of the host's own list
        argv += ["--ro-bind", str(hosts), "/etc/hosts"]
        owned.append("/etc/hosts")
    for mount in mounts:  # after /tmp, so a mount may sit under it
        argv += ["--bind" if mount.writable else "--ro-bind", mount.source, mount.target]
        owned.append(mount.target)
    # bubblewrap mounts in order and a later mount hides what an earlier one put beneath it, so the
    # interpreter comes last: a virtualenv under /tmp, or under a folder named like a mount target,
    # stays visible.
    for path in interpreter_paths(python_prefixes, owned, present):
        argv += ["--ro-bind", path, path]
    argv += tool_site_args(tool_sites, present)
    argv += ["--chdir", WORKSPACE, "--clearenv"]
    argv += [arg for key, value in env.items() for arg in ("--setenv", key, value)]
    return [*argv, "--", *command]


def interpreter_paths(prefixes: Sequence[str], owned: Sequence[str], exists: Callable[[str], bool]) -> list[str]:
    """The host paths to bind (read-only, at the same place) for the interpreter's prefixes.

    A prefix is bound whole, unless that would cover a path the sandbox owns (a virtualenv at /tmp
    itself, an interpreter whose prefix is /): then only its interpreter's parts are, so the host's
    /tmp or root never shows through and the sandbox's own mounts stay where they are."""
    paths: list[str] = []
    for prefix in dict.fromkeys(prefixes):  # ordered, without duplicates
        if any(PurePosixPath(own).is_relative_to(prefix) for own in owned):
            paths += [p for p in (str(PurePosixPath(prefix, part)) for part in PREFIX_PARTS) if exists(p)]
        else:
            paths.append(prefix)
    return list(dict.fromkeys(paths))


def tool_site_args(sites: Sequence[ToolSite], exists: Callable[[str], bool]) -> list[str]:
    """Each site-packages folder replaced by an empty one holding only its tools' names, read-only:
    after the interpreter, whose bind shows the whole folder."""
    argv: list[str] = []
    for folder in sites:
        argv += ["--tmpfs", folder.path]
        for name in folder.entries:
            path = str(PurePosixPath(folder.path, name))
            if exists(path):
                argv += ["--ro-bind", path, path]
        argv += ["--remount-ro", folder.path]
    return argv


def launch_failure(exit_code: int | None, first_line: str) -> str | None:
    """Why bubblewrap could not start the command, from its exit code and the first line of the run's
    output, or None if the command ran. bubblewrap reports its own failures (a missing program, a
    mount it could not make) as one `bwrap: ...` line before anything of the command's."""
    if exit_code != LAUNCH_FAILED or not first_line.startswith("bwrap: "):
        return None
    return first_line.removeprefix("bwrap: ").removeprefix("execvp ").strip()
