"""The tree under test, from the object store into a fresh workspace, never through a link.

The archive (activities.trees) names each file and link by its repository path; each is written
through activities.sandbox._safefs, so a link the tree holds is created as a link and never
followed, and a path that would pass through one is refused.
"""

from __future__ import annotations

from pathlib import Path

from activities.sandbox import _safefs
from activities.trees import TreeArchiveError, unpack


def unpack_tree(archive: bytes, workspace: Path) -> int:
    """Write the archive's files and links under `workspace` (an empty folder); how many there were.
    TreeArchiveError if the archive is damaged or holds a path that cannot be written safely."""
    count = 0
    with _safefs.root(workspace) as root:
        for member in unpack(archive):
            try:
                if member.kind == "link":
                    _safefs.write_link(root, member.path, member.data.decode("utf-8", "surrogateescape"))
                else:
                    _safefs.write_file(root, member.path, member.data, 0o755 if member.executable else 0o644)
            except (_safefs.UnsafeTreeError, IsADirectoryError, NotADirectoryError) as err:
                raise TreeArchiveError(f"{member.path!r} cannot be written: {err}") from None
            count += 1
    return count
