"""The bubblewrap command line for one sandboxed step, and how bubblewrap says it could not start
one. Pure: paths in, argv out.

Inside: an unprivileged user (nobody, no capabilities) in its own user, PID, IPC, UTS and network
namespaces; the exported commit read-write at /workspace, a directory for reports at
/forgeflow-out, the interpreter and system libraries read-only, a private /tmp, and only the
environment variables set here. The network namespace is empty (not even the host's loopback)
unless `share_net` is set, which only the install step gets, and only behind the registry proxy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath

from pydantic import BaseModel

WORKSPACE = "/workspace"
OUT = "/forgeflow-out"
ENV_DIR = "/forgeflow-env"  # the install step's virtualenv (cached per manifest hash)
JUNIT = f"{OUT}/junit.xml"
COVERAGE = f"{OUT}/coverage.xml"
SANDBOX_UID = 65534  # nobody
HOSTS_FILE = "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"
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


class Mount(BaseModel):
    source: str
    target: str
    writable: bool = False


def bwrap_argv(
    bwrap: str,
    *,
    mounts: Sequence[Mount],
    python_prefixes: Sequence[str],
    command: Sequence[str],
    env: Mapping[str, str],
    share_net: bool = False,
    hosts: Path | None = None,
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


def launch_failure(exit_code: int | None, first_line: str) -> str | None:
    """Why bubblewrap could not start the command, from its exit code and the first line of the run's
    output, or None if the command ran. bubblewrap reports its own failures (a missing program, a
    mount it could not make) as one `bwrap: ...` line before anything of the command's."""
    if exit_code != LAUNCH_FAILED or not first_line.startswith("bwrap: "):
        return None
    return first_line.removeprefix("bwrap: ").removeprefix("execvp ").strip()


def sandbox_env(python_prefixes: Sequence[str], extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment inside the sandbox: nothing of the worker's."""
    path = ":".join([f"{ENV_DIR}/bin", *(f"{p}/bin" for p in python_prefixes), "/usr/local/bin", "/usr/bin", "/bin"])
    return {
        "PATH": path,
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": WORKSPACE,
        "FORGEFLOW_JUNIT_XML": JUNIT,
        "CI": "true",
        **(extra or {}),
    }
