"""Commits kept unpacked on the sandbox worker, and working copies of them that commands run in, so
a command neither fetches and unpacks its commit again nor copies it whole: it gets a copy that an
earlier command used, put back the way the commit has it by touching only what that command moved.

- **The kept commit** (`<tree>/`) is written once from the object store's archive and never shown to
  a sandbox. The cache is bounded and safe to delete (activities._disk_cache): each tree id is one
  item, `<tree>` (ready: it appears by one rename), `<tree>.partial`, `<tree>.lock` and `<tree>.live/`.
- **Working copies** (`<tree>.live/<pid>-<id>/`) belong to this worker process, which remembers how
  each looked when it last equalled the commit (a walk: every entry's record, every folder's mode).
  A command takes a free one (or a new `cp -a` of the kept commit), the caller lays the agent's edits
  on it, runs the command, and gives it back. Giving back walks it again: an entry whose record did
  not move was not written (its status-change time moves with every write, and no process can set it
  back), so only the entries that moved are deleted or rewritten from the kept commit, and folders
  that were not the commit's are removed. A last walk must then show exactly the commit's entries and
  folders, else the copy is deleted rather than reused. A copy a command was cancelled in is deleted.
- **Untrusted shape:** a working copy was shaped by sandboxed code, so the reset goes through
  activities.sandbox._safefs (no link followed) and runs only once the sandbox has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from temporalio.exceptions import ApplicationError

from activities import _disk_cache
from activities._processes import alive
from activities.sandbox import _changes, _safefs
from activities.sandbox._steps import damaged, fetch_tree
from activities.sandbox._unpack import unpack_tree
from activities.sandbox.backend import LAUNCHER_ENV
from activities.trees import TreeArchiveError, TreeArchives, object_key

# A tree used this recently is never evicted: a command (and its install step) may still run in one
# of its working copies.
IN_USE_SECONDS = 3600
LIVE = ".live"
MAX_RESTORED_BYTES = 1024**3  # a file of the commit read back into a working copy


@dataclass
class WorkingCopy:
    path: Path
    clean: tuple[_changes.Snapshot, _changes.Folders]  # its walk when it last equalled the commit


@dataclass(frozen=True)
class Checkout:
    """A working copy of a commit for one command, and the kept commit it came from."""

    path: Path
    kept: Path


@dataclass
class PreparedTrees:
    root: Path
    archives: TreeArchives
    max_bytes: int | None
    _free: dict[str, list[WorkingCopy]] = field(default_factory=dict)  # by tree: copies no command uses now

    @contextlib.asynccontextmanager
    async def checkout(self, tree: str, commit_sha: str) -> AsyncIterator[Checkout]:
        """A working copy equal to the commit, this command's alone until the block ends."""
        kept = await self.entry(tree, commit_sha)
        free = self._free.setdefault(tree, [])
        while free and not free[-1].path.is_dir():  # evicted with its tree (unused for an hour): forget it
            free.pop()
        copy = free.pop() if free else await self._new_copy(tree, kept)
        try:
            yield Checkout(copy.path, kept)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, copy.path, True)  # mid-command: its state is unknown
            raise
        clean = await asyncio.to_thread(reset, copy.path, kept, copy.clean)
        if clean is None:
            await asyncio.to_thread(shutil.rmtree, copy.path, True)
        else:
            free.append(WorkingCopy(copy.path, clean))

    async def entry(self, tree: str, commit_sha: str) -> Path:
        """The kept folder of `tree`, fetched and unpacked on first use."""
        try:
            object_key(tree)  # anything but a tree id is refused: it names a folder here
        except ValueError as err:
            raise ApplicationError(str(err), type="InvalidInput", non_retryable=True) from None
        self.root.mkdir(parents=True, exist_ok=True)
        entry = self.root / tree
        async with _disk_cache.locked(self.root / f"{tree}.lock"):
            if entry.is_dir():
                _disk_cache.touch(entry)
                return entry
            archive = await fetch_tree(self.archives, tree, commit_sha)
            staging = self.root / f"{tree}.partial"
            await asyncio.to_thread(shutil.rmtree, staging, True)
            staging.mkdir()
            try:
                await asyncio.to_thread(unpack_tree, archive, staging)
            except TreeArchiveError as err:
                raise damaged(tree, err) from None
            staging.rename(entry)
            _disk_cache.touch(entry)
        if self.max_bytes is not None:
            await _disk_cache.bound(
                self.root,
                self.max_bytes,
                {tree},
                min_idle=IN_USE_SECONDS,
                item_of=lambda name: name.partition(".")[0] or name,
                lock_of=lambda item: self.root / f"{item}.lock",
            )
        return entry

    async def _new_copy(self, tree: str, kept: Path) -> WorkingCopy:
        """A new working copy of the kept commit (copies left by this worker's dead predecessors go)."""
        folder = self.root / f"{tree}{LIVE}"
        folder.mkdir(exist_ok=True)
        await asyncio.to_thread(_remove_orphans, folder)
        path = folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        path.mkdir(mode=0o700)
        try:
            await copy_tree(kept, path)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, path, True)
            raise
        return WorkingCopy(path, await asyncio.to_thread(_changes.walk, path))


async def copy_tree(source: Path, dest: Path) -> None:
    """`source`'s contents copied into the empty folder `dest`: files, modes and links as they are. A
    cancelled copy stops the `cp` before it returns, so nothing writes into `dest` afterwards."""
    proc = await asyncio.create_subprocess_exec(
        "cp", "-a", "--reflink=auto", f"{source}/.", str(dest),
        env=LAUNCHER_ENV, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, err = await proc.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await asyncio.shield(proc.wait())
        raise
    if proc.returncode != 0:
        raise OSError(f"copying {source.name} failed: {err.decode(errors='replace').strip()}")


def reset(path: Path, kept: Path, clean: tuple[_changes.Snapshot, _changes.Folders]) -> (
    tuple[_changes.Snapshot, _changes.Folders] | None
):  # fmt: skip
    """Put the working copy at `path` back the way the kept commit has it, touching only what moved
    since `clean`; its new clean walk, or None if it could not be made so (delete it then). Blocking."""
    entries, folders = clean
    try:
        now, now_folders = _changes.walk(path)
        moved = sorted(p for p, record in now.items() if entries.get(p) != record)
        extra = {f for f in now_folders if f not in folders}
        outermost = sorted(f for f in extra if not _under(f, extra))
        restored = sorted({*(p for p in moved if p in entries), *(p for p in entries if p not in now)})
        with _safefs.root(path) as root, _safefs.root(kept) as source:
            for folder in outermost:  # folders the command made: everything in them goes with them
                _safefs.remove_tree(root, folder)
            for entry in moved:
                if not _under(entry, extra):
                    _safefs.delete(root, entry)
            for entry in restored:
                _restore(source, root, entry, entries[entry])
            for folder, mode in folders.items():  # changed, or made again (with the umask's mode) above
                if now_folders.get(folder) != mode:
                    _safefs.set_mode(root, folder, mode)
        after, after_folders = _changes.walk(path)
    except (OSError, _safefs.UnsafeTreeError):
        return None
    same = after_folders == folders and after.keys() == entries.keys()
    if not same or any(after[p] != entries[p] and p not in restored for p in after):
        return None
    return after, after_folders


def _under(path: str, folders: set[str]) -> bool:
    return any(str(parent) in folders for parent in PurePosixPath(path).parents)


def _restore(source: int, root: int, path: str, record: _changes.Record) -> None:
    """The kept commit's entry at `path`, written into the working copy (where nothing is now)."""
    if record.kind == "link":
        _safefs.write_link(root, path, bytes(record.stamp).decode("utf-8", "surrogateescape"))
        return
    found = _safefs.read_file(source, path, MAX_RESTORED_BYTES)
    info = _safefs.lstat(source, path)
    if found is None or found.truncated or info is None:
        raise _safefs.UnsafeTreeError(0, f"{path} cannot be restored from the kept commit")
    _safefs.write_file(root, path, found.data, info.st_mode & 0o777)


def _remove_orphans(folder: Path) -> None:
    """Working copies whose worker process is gone (a crash, a restart): no one will reset them."""
    for copy in folder.iterdir():
        pid = copy.name.partition("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not alive(int(pid)):
            shutil.rmtree(copy, ignore_errors=True)
