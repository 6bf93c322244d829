"""Reads of commits without a process per call (issue 14): what the agents' read tools ask most.

- **Listings** of a commit (`git ls-tree -r -t -l`, folders included) are kept in memory, least
  recently used first out, within a bound on the entries kept. Only names that always mean the same
  tree are kept: a full commit id, or the commit cache's mapping ref of a remote commit; and a
  listing is kept for the repository folder it was read from (its inode), so a cache folder deleted
  and fetched again is listed again. Entries, the file list and the tree then cost a dict lookup
  instead of a git process.
- **Facts that do not change** (a commit's tree id, a folder's repository) are asked of git once.
- **Objects** are kept in memory once read (an object id names its content forever), least recently
  used first out, within a bound on their bytes: the planner, the coder and the reviewer of a run,
  and every run on the same commit, read the same files. A read of many objects (a search) takes
  what is kept but keeps nothing new, so that one search over a large tree does not push out the
  files the agents read.
- **Objects not kept** come from one long-lived `git cat-file --batch` per repository, which answers a few
  objects in microseconds. Reads share it without waiting for each other: each writes the names it
  wants, and git answers every name in the order asked, so one task reads the answers off the pipe and
  hands each to its reader (a hundred runs reading at once took 200 ms at the median, queued one
  read at a time). A read of many objects (a search over the tree) streams from a process of its
  own, so it never holds up the shared one while its consumer works. A shared process that fails is
  killed and replaced on the next read, and the reads waiting on it fail; a read that is cancelled
  leaves its answers to be read and dropped. An object the process reports missing is asked once more
  of a fresh process (the repository may have been deleted and fetched again under it), while the
  reads already asked of the old one get their answers from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from temporalio.exceptions import ApplicationError

from activities.blobstore import Recent
from activities.codehost._git import (
    OBJECT_ID,
    Blob,
    Repo,
    TreeEntry,
    cat_blobs,
    git_env,
    list_tree,
    open_repo,
    read_answer,
    read_commit_id,
    tree_id,
)

MAX_ENTRIES = 500_000  # entries kept over all cached listings (about 100 MB at most)
MAX_OBJECT_BYTES = 16 * 1024 * 1024  # objects' bytes kept over all repositories
MAX_PROCESSES = 16  # repositories with a shared cat-file process
MAX_FACTS = 4096  # tree ids and opened repositories kept
SMALL_READ = 64  # reads of at most this many objects use the shared process
_IMMUTABLE = re.compile(f"{OBJECT_ID.pattern}|refs/forgeflow/remote/{OBJECT_ID.pattern}")
DIRECTORY = "040000"
_Key = tuple[str, tuple[int, int], str]  # folder, its (device, inode), commit
T = TypeVar("T")
# How to read git's answer for one name off the pipe (read_answer, read_commit_id).
_Answer = Callable[[asyncio.StreamReader, str], Awaitable[T]]


def named(listing: dict[str, TreeEntry], paths: Sequence[str]) -> list[TreeEntry]:
    """The entries of exactly those `paths` that exist in the listing (folders included)."""
    return [listing[path] for path in dict.fromkeys(paths) if path in listing]


def contents(listing: dict[str, TreeEntry]) -> list[TreeEntry]:
    """Every file, link and submodule of the listing (no folders), in git's order."""
    return [entry for entry in listing.values() if entry.mode != DIRECTORY]


class GitReader:
    """Listings and objects of the repositories under one code host (see the module docstring)."""

    def __init__(
        self,
        max_entries: int = MAX_ENTRIES,
        max_processes: int = MAX_PROCESSES,
        max_object_bytes: int = MAX_OBJECT_BYTES,
    ) -> None:
        self._objects = Recent(max_object_bytes)
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

    async def commit_id(self, cwd: str, name: str) -> str | None:
        """The commit `name` (a ref, `<ref>^{commit}`, an id) names now, asked of the shared process:
        no process of its own (issue 14: a process started by a busy worker holds it up while git
        starts); None when it names no commit."""
        return (await self._batch(cwd).ask([name], read_commit_id))[0]

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
        kept: dict[str, bytes] = {}
        for oid in dict.fromkeys(object_ids):
            data = self._objects.get(_object(cwd, oid))
            if data is not None:
                kept[oid] = data
        wanted = [oid for oid in object_ids if oid not in kept]
        if len(wanted) > SMALL_READ:  # streamed from a process of its own, the kept ones in their places
            async with contextlib.aclosing(cat_blobs(cwd, wanted)) as blobs:
                streamed = aiter(blobs)
                for oid in object_ids:
                    yield Blob(oid, kept[oid]) if oid in kept else await anext(streamed)
            return
        found = dict(zip(wanted, await self._small_read(cwd, wanted), strict=True)) if wanted else {}
        for oid, data in found.items():
            if data is not None:
                self._objects.keep(_object(cwd, oid), data)
        for oid in object_ids:
            yield Blob(oid, kept[oid] if oid in kept else found[oid])

    async def _small_read(self, cwd: str, object_ids: list[str]) -> list[bytes | None]:
        found = await self._batch(cwd).ask(object_ids, read_answer)
        missing = [oid for oid, data in zip(object_ids, found, strict=True) if data is None]
        if missing:  # maybe the repository changed under the process: ask a fresh one
            self._batch(cwd).close()
            again = dict(zip(missing, await self._batch(cwd).ask(missing, read_answer), strict=True))
            found = [data if data is not None else again[oid] for oid, data in zip(object_ids, found, strict=True)]
        return found

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
            await batch.stop()
        self._batches.clear()


class _Batch:
    """The shared `git cat-file --batch` of one repository: its current process (a _Pipe)."""

    def __init__(self, cwd: str) -> None:
        self._cwd = cwd
        self._pipe: _Pipe | None = None
        self._starting = asyncio.Lock()

    async def ask(self, names: Sequence[str], answer: _Answer[T]) -> list[T]:
        return await (await self._started()).ask(names, answer)

    async def _started(self) -> _Pipe:
        async with self._starting:  # reads arriving together share the one process they start
            if self._pipe is None or self._pipe.broken:
                proc = await asyncio.create_subprocess_exec(
                    "git",
                    "cat-file",
                    "--batch",
                    cwd=self._cwd,
                    env=git_env(self._cwd),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                self._pipe = _Pipe(proc)
            return self._pipe

    def close(self) -> None:
        """The next read starts a fresh process; this one answers the reads asked of it, then ends
        (git ends when its input closes)."""
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.finish()

    async def stop(self) -> None:
        """Close, and wait for the process to end."""
        pipe = self._pipe
        self.close()
        if pipe is not None:
            await pipe.ended()


class _Pipe:
    """One `git cat-file --batch` process and the names waiting for its answers, in the order asked."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdin is not None and proc.stdout is not None  # both are pipes
        self._proc = proc
        self._stdin, self._stdout = proc.stdin, proc.stdout
        self._waiting: deque[tuple[str, asyncio.Future[Any], _Answer[Any]]] = deque()
        self._answering: asyncio.Task[None] | None = None
        self.broken = False

    async def ask(self, names: Sequence[str], answer: _Answer[T]) -> list[T]:
        """Each name's answer, as `answer` reads it off the pipe."""
        loop = asyncio.get_running_loop()
        asked: list[tuple[str, asyncio.Future[T], _Answer[T]]] = [
            (name, loop.create_future(), answer) for name in names
        ]
        # The names join the queue and the pipe in one step, so the queue's order is the pipe's.
        self._waiting.extend(asked)
        try:  # one line per name: a newline would read as another request
            self._stdin.write(b"".join(name.replace("\n", " ").encode() + b"\n" for name in names))
        except (OSError, RuntimeError) as err:  # the process is gone
            self._fail(err)
            for _, future, _ in asked:
                future.exception()  # raised here, not left unread
            raise
        if self._answering is None or self._answering.done():
            self._answering = asyncio.create_task(self._answer())
        futures = [future for _, future, _ in asked]
        try:
            await self._stdin.drain()  # a few names: the pipe holds them while git answers
            return list(await asyncio.gather(*futures))
        except BaseException:  # failed, or cancelled: the answers not yet in are read and dropped
            for future in futures:
                future.cancel()
            raise

    async def _answer(self) -> None:
        """Read git's answers for as long as reads wait for them, each to its own read."""
        try:
            while self._waiting:
                name, future, answer = self._waiting[0]
                found = await answer(self._stdout, name)
                self._waiting.popleft()
                if not future.done():  # a cancelled read's answer is dropped
                    future.set_result(found)
        except ApplicationError as err:  # git ended before answering
            self._fail(err)
        except Exception as err:  # git died halfway through an answer, or wrote what is not one
            self._fail(ApplicationError(f"git cat-file stopped answering: {err!r}", type="GitError"))
        except asyncio.CancelledError:  # the loop is closing: nobody reads the answers any more
            self._fail(ApplicationError("git cat-file's answers were no longer read", type="GitError"))
            raise

    def _fail(self, err: BaseException) -> None:
        self.broken = True
        if self._proc.returncode is None:
            self._proc.kill()
        while self._waiting:
            _, future, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(err)

    def finish(self) -> None:
        """No more reads: git answers those asked, then ends as its input closes."""
        self.broken = True
        self._stdin.close()

    async def ended(self) -> None:
        if self._answering is not None:
            await self._answering
        await self._proc.wait()


def _object(cwd: str, oid: str) -> str:
    """An object's key among those kept: its repository's folder and its id."""
    return f"{cwd}\0{oid}"


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
