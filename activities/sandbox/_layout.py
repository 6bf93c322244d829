"""The sandbox as the code inside it sees it, whichever backend isolates it: where the commit and
the report folder are, the hosts file, the host paths a step adds, and the whole environment.
Values only: the backends (activities.sandbox.bubblewrap, ...) decide how to make it so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel

WORKSPACE = "/workspace"
OUT = "/forgeflow-out"
ENV_DIR = "/forgeflow-env"  # the install step's virtualenv (cached per manifest hash)
INBOX = "/forgeflow-in"  # files the worker hands a step, read-only (an evaluation's test patch)
JUNIT = f"{OUT}/junit.xml"
COVERAGE = f"{OUT}/coverage.xml"
HOSTS_FILE = "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"


class Mount(BaseModel):
    """A host path shown to the sandbox at `target`, read-only unless `writable`."""

    source: str
    target: str
    writable: bool = False


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
