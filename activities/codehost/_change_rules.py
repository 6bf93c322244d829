"""The code hosts' shared rules as the errors Temporal acts on (the rules themselves are pure, in
policy/host_rules.py): which task a run has, and what a change may do to a repository, for both
code hosts and the workspace tools.

A repository can commit a symbolic link to anywhere (`dirlink -> /some/host/dir`). Git stores a link
as a blob holding its target, with mode 120000, and a checkout or a sandbox makes it a real link:

- No file is written or deleted through a link. A path with a link among its parent directories is
  refused: whatever applies the change would write outside the repository.
- A change to a path that is itself a link replaces the link with a regular file (or deletes it). It
  re-points or removes what the link gave access to, so it lands only with a human's approval.

The hosts look the modes up (git, the GitHub API) and pass them in.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from temporalio.exceptions import ApplicationError

from contracts.codehost import FetchTaskInput
from policy import host_rules as rules
from policy.host_rules import link_above
from policy.paths import UnsafePathError, repo_path

# The workspace tools reach the pure link helpers through this module too.
__all__ = ["check_branch", "check_links", "check_overlay_paths", "task_source"]


def task_source(req: FetchTaskInput) -> rules.TaskSource:
    """Where the task's text comes from, by the one precedence both hosts follow; NoTask when nowhere."""
    try:
        return rules.task_source(req.spec_content, req.issue_number, req.pr_number)
    except rules.NoTaskError as err:
        raise ApplicationError(str(err), type="NoTask", non_retryable=True) from None


def check_branch(branch: str) -> None:
    """Refuse (BranchNotAllowed) a branch that is not forgeflow's own."""
    if not rules.is_own_branch(branch):
        raise ApplicationError(
            f"branch {branch!r} is not under {rules.BRANCH_PREFIX}: forgeflow writes only its own branches",
            type="BranchNotAllowed",
            non_retryable=True,
        )


def check_overlay_paths(paths: Iterable[str]) -> None:
    """Refuse (UnsafePath) an overlay path that the tools' own check would refuse or rewrite."""
    for raw in paths:
        try:
            clean = repo_path(raw)
        except UnsafePathError as err:
            raise _unsafe(f"overlay path {raw!r} is unsafe: {err}") from err
        if clean != raw:
            raise _unsafe(f"overlay path {raw!r} is not a normalised repository path (did you mean {clean!r}?)")


def check_links(paths: Iterable[str], modes: Mapping[str, str], approved: Collection[str]) -> None:
    """Refuse a change through a link (UnsafePath) and an unapproved change to a link (LinkChange).

    `modes` holds the parent commit's git modes of the paths and of the directories above them. The
    LinkChange error's first detail is the sorted list of links to approve, for the workflow's gate."""
    paths = sorted(paths)
    for path in paths:
        link = link_above(path, modes)
        if link is not None:
            raise _unsafe(f"overlay path {path!r} is under {link!r}, a symbolic link in the parent commit")
    unapproved = [path for path in paths if modes.get(path) == rules.LINK_MODE and path not in approved]
    if unapproved:
        raise ApplicationError(
            f"the change replaces or deletes symbolic links ({', '.join(unapproved)}); "
            "a maintainer must approve that before it is committed",
            unapproved,
            type="LinkChange",
            non_retryable=True,
        )


def _unsafe(message: str) -> ApplicationError:
    return ApplicationError(message, type="UnsafePath", non_retryable=True)
