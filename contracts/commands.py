"""One shell command an agent runs in the sandbox (`run_command`, task queue forgeflow-sandbox).

The command runs on a commit plus the agent's overlay, isolated like the tests; what it changes in
the workspace comes back as content keys, so the workflow folds it into the agent's overlay like any
other edit, and a retried or replayed call yields the same state.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from contracts.testing import InstallReport, SandboxLimits
from contracts.versioning import DURABLE

# What a role may do with commands: none; run them and discard what they change; run them and keep it.
CommandAccess = Literal["off", "read_only", "write"]
# not_run: the workspace could not be set up (a failed install step, an invalid .forgeflow.yml).
CommandStatus = Literal["exited", "timed_out", "out_of_memory", "too_many_processes", "too_much_output", "not_run"]
DEFAULT_COMMAND_SECONDS = 120
MAX_COMMAND_CHARS = 8_000


class RunCommandInput(BaseModel):
    model_config = DURABLE

    repository: str = Field(description="The repository, as the run names it: installs are kept per repository.")
    commit_sha: str
    tree: str = Field(description="commit_sha's git tree id: the sandbox fetches the files from the object store.")
    overlay: dict[str, str | None] = Field(
        default_factory=dict, description="The agent's edits on top of the commit (blob keys; None: deleted)."
    )
    command: str = Field(min_length=1, max_length=MAX_COMMAND_CHARS, description="Run by bash -c in /workspace.")
    keep_changes: bool = Field(
        default=True, description="Return what the command changed as edits (False: read-only, only reported)."
    )
    tests_only: bool = Field(default=False, description="Only changes to test files may come back (the tester).")
    install_command: list[str] | None = Field(
        default=None, description="The run's dependency install step, overriding .forgeflow.yml."
    )
    timeout_seconds: int = Field(default=DEFAULT_COMMAND_SECONDS, gt=0)


class NotKept(BaseModel):
    """A change the command made that does not come back as an edit, and why."""

    path: str
    why: str


class CommandResult(BaseModel):
    """How the command ended. The text the agent reads (command, status, bounded output, changes)
    is in the blob store under `content_key`; `preview` is its first line, for people reading history."""

    model_config = DURABLE

    status: CommandStatus
    exit_code: int | None = Field(default=None, description="None when the sandbox stopped it at a limit.")
    duration_seconds: float = 0.0
    output_bytes: int = Field(default=0, description="Everything the command printed, stdout and stderr together.")
    output_cut_bytes: int = Field(default=0, description="Of those, left out between the head and the tail shown.")
    changes: dict[str, str | None] = Field(
        default_factory=dict, description="Files the command created or changed (blob key) or deleted (None)."
    )
    removed_edits: list[str] = Field(
        default_factory=list, description="Files the agent had created that the command deleted: they leave its edits."
    )
    not_kept: list[NotKept] = Field(default_factory=list)
    install: InstallReport | None = None
    limits: SandboxLimits | None = None
    preview: str = ""
    content_key: str = Field(description="Blob key of the whole answer the agent reads.")
