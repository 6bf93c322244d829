"""Which agents may run sandboxed commands, and how. Pure.

The run's option says which roles have commands (None: the roles that have them by default, the
coder and the tester); the repository's `.forgeflow.yml` can only take roles away. A role whose
changes are not kept (the planner, the reviewer) runs its commands read-only.
"""

from __future__ import annotations

from collections.abc import Collection

from contracts.commands import CommandAccess


def command_access(
    role: str,
    *,
    by_default: bool,
    keeps_changes: bool,
    run_roles: Collection[str] | None,
    repo_roles: Collection[str] | None,
) -> CommandAccess:
    """`role`'s access to commands: `by_default` and `keeps_changes` are the role's own (roles/), `run_roles`
    the run's option and `repo_roles` the repository's limit (None: no option / no limit)."""
    wanted = by_default if run_roles is None else role in run_roles
    allowed = repo_roles is None or role in repo_roles
    if not (wanted and allowed):
        return "off"
    return "write" if keeps_changes else "read_only"
