"""The bubblewrap command line for one sandboxed test run. Pure: paths in, argv out.

Inside: no network (own, empty network namespace), own PID namespace, the exported commit
read-write at /workspace, a directory for the report at /forgeflow-out, the interpreter and system
libraries read-only, a private /tmp, and only the environment variables set here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

WORKSPACE = "/workspace"
OUT = "/forgeflow-out"
JUNIT = f"{OUT}/junit.xml"
COVERAGE = f"{OUT}/coverage.xml"
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64")
ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/localtime",
    "/etc/alternatives",
)


def bwrap_argv(
    bwrap: str,
    *,
    workspace: Path,
    out_dir: Path,
    python_prefixes: Sequence[str],
    command: Sequence[str],
    exists: object = None,
) -> list[str]:
    """The argv; `exists` (a predicate, for tests) decides which optional host paths to bind."""
    present = exists if callable(exists) else (lambda p: Path(p).exists())
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--new-session"]
    for path in [*SYSTEM_DIRS, *ETC_FILES]:
        if present(path):
            argv += ["--ro-bind", path, path]
    for prefix in dict.fromkeys(python_prefixes):  # ordered, without duplicates
        argv += ["--ro-bind", prefix, prefix]
    argv += ["--bind", str(workspace), WORKSPACE, "--bind", str(out_dir), OUT]
    argv += ["--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev", "--chdir", WORKSPACE]
    argv += ["--clearenv", *_env(python_prefixes)]
    return [*argv, "--", *command]


def _env(python_prefixes: Sequence[str]) -> list[str]:
    path = ":".join([*(f"{p}/bin" for p in python_prefixes), "/usr/local/bin", "/usr/bin", "/bin"])
    env = {
        "PATH": path,
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": WORKSPACE,
        "FORGEFLOW_JUNIT_XML": JUNIT,
        "CI": "true",
    }
    return [arg for key, value in env.items() for arg in ("--setenv", key, value)]
