"""Commits kept unpacked on the sandbox worker, so an agent's commands do not fetch and unpack the
same commit again: each command gets a copy of it (one `cp -a`), never the kept folder itself.

The cache is bounded and safe to delete (activities._disk_cache): each tree id is one item, `<tree>`
(ready: it appears by one rename), `<tree>.partial` and `<tree>.lock`. A kept tree was written from
the object store's archive and no sandbox ever sees it, so it holds the commit exactly: copying it
copies links as links, and reading it goes through activities.sandbox._safefs all the same.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from temporalio.exceptions import ApplicationError

from activities import _disk_cache
from activities.sandbox._steps import damaged, fetch_tree
from activities.sandbox._unpack import unpack_tree
from activities.sandbox.backend import LAUNCHER_ENV
from activities.trees import TreeArchiveError, TreeArchives, object_key

IN_USE_SECONDS = 600  # a tree used this recently is never evicted: a command may still be copying it


class PreparedTrees:
    def __init__(self, root: Path, archives: TreeArchives, max_bytes: int | None) -> None:
        self._root, self._archives, self._max_bytes = root, archives, max_bytes

    async def entry(self, tree: str, commit_sha: str) -> Path:
        """The kept folder of `tree`, fetched and unpacked on first use."""
        try:
            object_key(tree)  # anything but a tree id is refused: it names a folder here
        except ValueError as err:
            raise ApplicationError(str(err), type="InvalidInput", non_retryable=True) from None
        self._root.mkdir(parents=True, exist_ok=True)
        entry = self._root / tree
        async with _disk_cache.locked(self._root / f"{tree}.lock"):
            if entry.is_dir():
                _disk_cache.touch(entry)
                return entry
            archive = await fetch_tree(self._archives, tree, commit_sha)
            staging = self._root / f"{tree}.partial"
            await asyncio.to_thread(shutil.rmtree, staging, True)
            staging.mkdir()
            try:
                await asyncio.to_thread(unpack_tree, archive, staging)
            except TreeArchiveError as err:
                raise damaged(tree, err) from None
            staging.rename(entry)
            _disk_cache.touch(entry)
        if self._max_bytes is not None:
            await _disk_cache.bound(
                self._root,
                self._max_bytes,
                {tree},
                min_idle=IN_USE_SECONDS,
                item_of=lambda name: name.partition(".")[0],
                lock_of=lambda item: self._root / f"{item}.lock",
            )
        return entry

    async def copy(self, entry: Path, dest: Path) -> None:
        """A copy of the kept folder at `dest` (an empty folder): files, modes and links as they are."""
        proc = await asyncio.create_subprocess_exec(
            "cp", "-a", "--reflink=auto", f"{entry}/.", str(dest),
            env=LAUNCHER_ENV, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise OSError(f"copying the kept tree {entry.name} failed: {err.decode(errors='replace').strip()}")
