"""What a change may do to a repository's tree: one rule for both code hosts and the workspace tools.

A repository can commit a symbolic link to anywhere (`dirlink -> /some/host/dir`). Git stores a link
as a blob holding its target, with mode 120000, and a checkout or a sandbox makes it a real link:

- No file is written or deleted through a link. A path with a link among its parent directories is
  refused: whatever applies the change would write outside the repository.
- A change to a path that is itself a link replaces the link with a regular file (or deletes it). It
  re-points or removes what the link gave access to, so it lands only with a human's approval.

Pure: the hosts look the modes up (git, the GitHub API) and pass them in.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from temporalio.exceptions import ApplicationError

from policy.paths import UnsafePathError, repo_path

LINK_MODE = "120000"
EXECUTABLE_MODE = "100755"
FILE_MODE = "100644"


def parents(path: str) -> list[str]:
    """The directories above a repository path, outermost first: `a/b/c` → `a`, `a/b`."""
    parts = path.split("/")
    return ["/".join(parts[:n]) for n in range(1, len(parts))]


def with_parents(paths: Iterable[str]) -> list[str]:
    """The paths and every directory above them: what a host looks up to apply these rules."""
    return sorted({found for path in paths for found in (*parents(path), path)})


def link_above(path: str, modes: Mapping[str, str]) -> str | None:
    """The first directory above `path` that is a symbolic link (per `modes`: path → git mode), if any."""
    return next((parent for parent in parents(path) if modes.get(parent) == LINK_MODE), None)


def written_mode(path: str, modes: Mapping[str, str]) -> str:
    """The mode a written file gets: executables stay executable; links and all else become regular files."""
    return EXECUTABLE_MODE if modes.get(path) == EXECUTABLE_MODE else FILE_MODE


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
    unapproved = [path for path in paths if modes.get(path) == LINK_MODE and path not in approved]
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
