"""The bubblewrap command line for one sandboxed step. Pure: paths in, argv out.

Inside: an unprivileged user (nobody, no capabilities) in its own user, PID, IPC, UTS and network
namespaces; the exported commit read-write at /workspace, a directory for reports at
/forgeflow-out, the interpreter and system libraries read-only, a private /tmp, and only the
environment variables set here. The network namespace is empty (not even the host's loopback)
unless `share_net` is set, which only the install step gets, and only behind the registry proxy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

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
    for prefix in dict.fromkeys(python_prefixes):  # ordered, without duplicates
        argv += ["--ro-bind", prefix, prefix]
    argv += ["--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev"]
    if hosts is not None:  # `localhost` resolves (test servers bind it); nothing of the host's own list
        argv += ["--ro-bind", str(hosts), "/etc/hosts"]
    for mount in mounts:  # after /tmp, so a mount may sit under it
        argv += ["--bind" if mount.writable else "--ro-bind", mount.source, mount.target]
    argv += ["--chdir", WORKSPACE, "--clearenv"]
    argv += [arg for key, value in env.items() for arg in ("--setenv", key, value)]
    return [*argv, "--", *command]


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
