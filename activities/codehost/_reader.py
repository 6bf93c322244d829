"""Reads of commits without a process per call (issue 14): what the agents' read tools ask most.

- **Listings** of a commit (`git ls-tree -r -t -l`, folders included) are kept in memory, least
  recently used first out, within a bound on the entries kept. Only names that always mean the same
  tree are kept: a full commit id, or the commit cache's mapping ref of a remote commit; and a
  listing is kept for the repository folder it was read from (its inode), so a cache folder deleted
  and fetched again is listed again. Entries, the file list and the tree then cost a dict lookup
  instead of a git process.
- **Facts that do not change** (a commit's tree id, a folder's repository) are asked of git once.
- **Objects** come from one long-lived `git cat-file --batch` per repository, which answers a few
  objects in microseconds; a read of many objects (a search over the tree) streams from a process of
  its own, so it never holds the shared one while its consumer works. A shared process that fails,
  or whose read is cancelled halfway, is killed and replaced on the next read; an object it reports
  missing is asked once more of a fresh process (the repository may have been deleted and fetched
  again under it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections import OrderedDict
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from activities.codehost._git import (
    Blob,
    Repo,
    TreeEntry,
    cat_blobs,
    git_env,
    list_tree,
    open_repo,
    read_answer,
    tree_id,
)

MAX_ENTRIES = 500_000  # entries kept over all cached listings (about 100 MB at most)
MAX_PROCESSES = 16  # repositories with a shared cat-file process
MAX_FACTS = 4096  # tree ids and opened repositories kept
SMALL_READ = 64  # reads of at most this many objects use the shared process
_IMMUTABLE = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?|refs/forgeflow/remote/[0-9a-f]{40}(?:[0-9a-f]{24})?")
DIRECTORY = "040000"
_Key = tuple[str, tuple[int, int], str]  # folder, its (device, inode), commit


def named(listing: dict[str, TreeEntry], paths: Sequence[str]) -> list[TreeEntry]:
    """The entries of exactly those `paths` that exist in the listing (folders included)."""
    return [listing[path] for path in dict.fromkeys(paths) if path in listing]


def contents(listing: dict[str, TreeEntry]) -> list[TreeEntry]:
    """Every file, link and submodule of the listing (no folders), in git's order."""
    return [entry for entry in listing.values() if entry.mode != DIRECTORY]


class GitReader:
    """Listings and objects of the repositories under one code host (see the module docstring)."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_processes: int = MAX_PROCESSES) -> None:
        self._max_entries = max_entries
        self._max_processes = max_processes
        self._listings: OrderedDict[_Key, dict[str, TreeEntry]] = OrderedDict()
        self._entries = 0
        self._loading: dict[_Key, asyncio.Lock] = {}
        self._batches: OrderedDict[str, _Batch] = OrderedDict()
        self._trees: OrderedDict[_Key, str] = OrderedDict()
        self._repos: OrderedDict[tuple[str, tuple[int, int]], Repo] = OrderedDict()

    # --- facts that do not change: a commit's tree, a folder's repository -----------------------

    async def tree_id(self, cwd: str, commit: str) -> str:
        """The id of `commit`'s tree; asked of git once per commit that always means the same tree."""
        if not _IMMUTABLE.fullmatch(commit):
            return await tree_id(cwd, commit)
        key = (cwd, _folder(cwd), commit)
        found = self._trees.get(key)
        if found is None:
            found = self._trees[key] = await tree_id(cwd, commit)
            _bound(self._trees, MAX_FACTS)
        return found

    async def repo(self, directory: str) -> Repo:
        """`open_repo(directory)`, asked of git once per folder (a folder's repository, bare or not, and
        its git directory stay what they are while the folder is the same)."""
        key = (directory, _folder(directory))
        found = self._repos.get(key)
        if found is None:
            found = self._repos[key] = await open_repo(directory)
            _bound(self._repos, MAX_FACTS)
        return found

    # --- listings ------------------------------------------------------------------------------

    async def listing(self, cwd: str, commit: str) -> dict[str, TreeEntry]:
        """Every entry of `commit` by path, folders included (`list_tree`, and its errors)."""
        if not _IMMUTABLE.fullmatch(commit):
            return await list_tree(cwd, commit)
        key = (cwd, _folder(cwd), commit)
        lock = self._loading.setdefault(key, asyncio.Lock())
        async with lock:  # many runs reading one commit at once list it once
            found = self._listings.get(key)
            if found is None:
                found = await list_tree(cwd, commit)
                self._keep(key, found)
            else:
                self._listings.move_to_end(key)
        if not lock.locked():
            self._loading.pop(key, None)
        return found

    def _keep(self, key: _Key, listing: dict[str, TreeEntry]) -> None:
        if len(listing) > self._max_entries:
            return  # larger than the whole bound: read again each time
        self._listings[key] = listing
        self._entries += len(listing)
        while self._entries > self._max_entries:
            _, dropped = self._listings.popitem(last=False)
            self._entries -= len(dropped)

    async def entries(self, cwd: str, commit: str, paths: Sequence[str]) -> list[TreeEntry]:
        return named(await self.listing(cwd, commit), paths)

    async def tree(self, cwd: str, commit: str) -> list[TreeEntry]:
        return contents(await self.listing(cwd, commit))

    async def files(self, cwd: str, commit: str) -> list[str]:
        return [entry.path for entry in await self.tree(cwd, commit)]

    # --- objects -------------------------------------------------------------------------------

    async def read(self, cwd: str, object_ids: Sequence[str]) -> AsyncGenerator[Blob, None]:
        """The objects, in order. Close the generator to stop early."""
        if len(object_ids) > SMALL_READ:
            async with contextlib.aclosing(cat_blobs(cwd, object_ids)) as blobs:
                async for blob in blobs:
                    yield blob
            return
        found = await self._batch(cwd).read(object_ids)
        missing = [oid for oid, data in zip(object_ids, found, strict=True) if data is None]
        if missing:  # maybe the repository changed under the process: ask a fresh one
            await self._batch(cwd).reset()
            again = dict(zip(missing, await self._batch(cwd).read(missing), strict=True))
            found = [data if data is not None else again[oid] for oid, data in zip(object_ids, found, strict=True)]
        for oid, data in zip(object_ids, found, strict=True):
            yield Blob(oid, data)

    def _batch(self, cwd: str) -> _Batch:
        batch = self._batches.get(cwd)
        if batch is None:
            batch = self._batches[cwd] = _Batch(cwd)
            while len(self._batches) > self._max_processes:
                _, idle = self._batches.popitem(last=False)
                idle.close()  # a read in progress on it finishes first
        self._batches.move_to_end(cwd)
        return batch

    async def close(self) -> None:
        """End every shared process (a worker that stops; tests)."""
        for batch in self._batches.values():
            await batch.reset()
        self._batches.clear()


class _Batch:
    """One `git cat-file --batch` for one repository, one read at a time."""

    def __init__(self, cwd: str) -> None:
        self._cwd = cwd
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def read(self, object_ids: Sequence[str]) -> list[bytes | None]:
        async with self._lock:
            proc = await self._started()
            assert proc.stdin is not None and proc.stdout is not None  # both are pipes
            try:
                for oid in object_ids:  # one line per name: a newline would read as another request
                    proc.stdin.write(oid.replace("\n", " ").encode() + b"\n")
                await proc.stdin.drain()  # a few names: the pipe holds them while git answers
                return [await read_answer(proc.stdout, oid) for oid in object_ids]
            except BaseException:  # failed or cancelled halfway: the stream is out of step, so end it
                self._kill()
                raise

    async def _started(self) -> asyncio.subprocess.Process:
        if self._proc is None or self._proc.returncode is not None:
            self._proc = await asyncio.create_subprocess_exec(
                "git",
                "cat-file",
                "--batch",
                cwd=self._cwd,
                env=git_env(self._cwd),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
        return self._proc

    def _kill(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
        self._proc = None

    def close(self) -> None:
        """Stop the process (git ends when its input closes), after the read in progress if any."""
        if self._lock.locked():
            return  # the read in progress finishes; its pipes close with this object
        if self._proc is not None and self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc = None

    async def reset(self) -> None:
        async with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()


def _bound(kept: OrderedDict[Any, Any], most: int) -> None:
    while len(kept) > most:
        kept.popitem(last=False)


def _folder(cwd: str) -> tuple[int, int]:
    """Which folder is at `cwd` now: (device, inode), or (0, 0) when there is none."""
    try:
        found = os.stat(cwd)
    except OSError:
        return (0, 0)
    return (found.st_dev, found.st_ino)
