"""The isolation-backend seam: what running one step in a sandbox asks of a backend.

A backend turns a step (a command as the sandbox sees it, the host folders it is shown, its
variables) into the argv and environment of the process the worker launches, and recognises from
that process's end that the backend itself could not start the command. The worker runs the launch
under its own limits (activities.sandbox._limited) and reads the results itself, never through a
path the sandboxed code could have replaced (activities.sandbox._safefs).

Which backend a worker uses is decided in one place: activities.sandbox.backends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from activities.sandbox._layout import Mount
from activities.sandbox._tools import ToolSite

# The whole environment of the process that launches a sandbox: the worker's own variables hold its
# secrets, and nothing of them may reach a sandbox, or a process sandboxed code could inspect.
LAUNCHER_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


@dataclass(frozen=True)
class BackendOptions:
    """What the operator configured for isolation (the worker's FORGEFLOW_SANDBOX_* settings)."""

    bwrap: str  # bubblewrap: a program name looked up on `search_path`, or a path
    allow_unsandboxed: bool  # FORGEFLOW_ALLOW_UNSANDBOXED: the operator accepts runs without isolation
    search_path: str | None = None  # where programs are looked up (a PATH value); None: the worker's PATH


@dataclass(frozen=True)
class Unavailable:
    """A backend that cannot run on this worker, and what the operator can do about it."""

    advice: str


@dataclass(frozen=True)
class Step:
    """One command to run isolated, as the sandbox sees it (paths under _layout.WORKSPACE and OUT)."""

    command: Sequence[str]
    env: Mapping[str, str]  # the step's own variables, over the sandbox's (_layout.sandbox_env)
    mounts: Sequence[Mount]  # host paths the step needs besides the workspace and its report folder
    workspace: Path  # the host folder seen at WORKSPACE (read-write)
    out_dir: Path  # the host folder seen at OUT (read-write)
    hosts: Path  # the file seen at /etc/hosts
    python_prefixes: Sequence[str]  # the worker's interpreter, shown read-only where it is on the host
    tool_sites: Sequence[ToolSite] = ()  # its site-packages folders, each showing only these names


@dataclass(frozen=True)
class Launch:
    """The process the worker starts for a step: its argv and its whole environment."""

    argv: list[str]
    env: dict[str, str]


class IsolationBackend(Protocol):
    """One way of isolating a step (bubblewrap, a container runtime, a microVM, or none at all)."""

    @property
    def isolates(self) -> bool:
        """False only for the operator's opt-in to unsandboxed runs: reports then say so first."""
        ...

    def launch(self, step: Step) -> Launch:
        """The argv and environment that run `step` isolated. The environment must hold nothing of the
        worker's own (start from LAUNCHER_ENV)."""
        ...

    def launch_failure(self, exit_code: int | None, first_line: str) -> str | None:
        """Why the backend could not start the command, from the launch's exit code and the first line
        of its output; None if the command ran (whatever its result)."""
        ...
