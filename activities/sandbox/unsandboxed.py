"""No isolation: the operator's opt-in (FORGEFLOW_ALLOW_UNSANDBOXED=1) for workers without a
sandbox. The step's command runs as the worker's user, in the workspace copy, with the report
folder's real path where the sandbox would see OUT; its report says first that it ran unsandboxed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from activities.sandbox._layout import OUT
from activities.sandbox.backend import LAUNCHER_ENV, BackendOptions, Launch, Step, Unavailable


@dataclass(frozen=True)
class Unsandboxed:
    """The same command, no namespaces, mounts or hosts file: only the launcher's clean environment."""

    isolates: ClassVar[bool] = False

    def launch(self, step: Step) -> Launch:
        out_dir = str(step.out_dir)
        command = [arg.replace(OUT, out_dir) for arg in step.command]
        env = {key: value.replace(OUT, out_dir) for key, value in step.env.items()}
        return Launch(
            argv=["env", "-C", str(step.workspace), *command],
            env={**LAUNCHER_ENV, **env, "PYTHONPATH": str(step.workspace)},
        )

    def launch_failure(self, exit_code: int | None, first_line: str) -> str | None:
        return None  # `env` runs the command itself: whatever ended it, the command's own result


def find(options: BackendOptions) -> Unsandboxed | Unavailable:
    """Only with the operator's opt-in."""
    if not options.allow_unsandboxed:
        return Unavailable("set FORGEFLOW_ALLOW_UNSANDBOXED=1 to accept the risk")
    return Unsandboxed()
