"""A worker's local caches: bounded in size, and safe to delete at any moment.

A cache root holds independent items (a GitHub repository's commits, one install's dependencies);
anything that is missing is fetched or built again, so deleting one item or the whole root loses
nothing. After each fill, `trim` evicts the least recently used items until the root fits its
byte budget.

- **Last use** is the modification time of the item's own entry (the top-level entry named as the
  item; without one, such as an install that never finished, its newest entry), set by `touch` on
  every use; adding or removing that folder's direct children sets it too, which is also a use. No
  marker file is needed, a lock file's age is beside the point, and an item left by an older
  version has a last use too.
- **Sizes** are measured without following any link: a link counts as itself, never as what it
  points to (the install cache holds what untrusted code left).
- **In use** items are never evicted: those the caller names (this process uses them now), those
  whose lock file (`lock_of`) another holder has locked, and those used within `min_idle` seconds,
  which covers a use that began just after the decision. The total may stay over budget while
  everything is in use.
- **Eviction is safe with other processes**: under the item's lock, each entry is renamed to
  `.trash-<uuid>` (atomic, so no one finds half an item under its name), then deleted. Trash left by
  a crash or an interrupted delete is removed by the next trim, whoever runs it. A lock file is
  renamed last, and a waiter that then gets it finds the file gone from its path and locks again
  (`locked`).

The decision (`to_evict`) is pure; `trim` is the blocking filesystem work, and `bound` runs it off
the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import stat
import time
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

_log = structlog.get_logger(__name__)
TRASH_PREFIX = ".trash-"


@dataclass(frozen=True)
class Item:
    name: str
    size: int  # bytes, links counted as links
    last_use: float  # seconds since the epoch


def to_evict(
    items: Sequence[Item], budget: int, in_use: Collection[str], *, now: float, min_idle: float = 0.0
) -> list[str]:
    """The items to evict, least recently used first, until the total is within `budget` bytes.
    Items in `in_use`, and items used less than `min_idle` seconds before `now`, are never chosen. Pure."""
    total = sum(item.size for item in items)
    chosen = []
    for item in sorted(items, key=lambda item: (item.last_use, item.name)):
        if total <= budget:
            break
        if item.name in in_use or now - item.last_use < min_idle:
            continue
        chosen.append(item.name)
        total -= item.size
    return chosen


def touch(path: Path) -> None:
    """Record a use of the item at `path` (its modification time: the LRU order). Nothing if absent,
    and a failure only costs the order: a use never fails for it."""
    with contextlib.suppress(OSError):
        os.utime(path, follow_symlinks=False)


def size_of(path: Path) -> int:
    """Bytes at and under `path`, following no link; what vanishes meanwhile counts as nothing."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return 0
    total, folders = found.st_size, [path] if stat.S_ISDIR(found.st_mode) else []
    while folders:
        try:
            with os.scandir(folders.pop()) as entries:
                for entry in entries:
                    with contextlib.suppress(FileNotFoundError):
                        total += entry.stat(follow_symlinks=False).st_size
                        if entry.is_dir(follow_symlinks=False):
                            folders.append(Path(entry.path))
        except (FileNotFoundError, NotADirectoryError):
            continue
    return total


def trim(
    root: Path,
    budget: int,
    in_use: Collection[str] = (),
    *,
    min_idle: float = 0.0,
    item_of: Callable[[str], str] = str,
    lock_of: Callable[[str], Path] | None = None,
) -> list[str]:
    """Remove trash, then evict items under `root` until it fits in `budget` bytes; the names evicted.

    `item_of` maps a top-level name to the item it belongs to (default: each entry is an item);
    `lock_of` names an item's lock file, taken without waiting: an item whose lock is held is in use.
    `in_use` is read while the trim runs, so a live set may be passed. Blocking."""
    items, members = _scan(root, item_of)
    last_use = {item.name: item.last_use for item in items}
    evicted = []
    for name in to_evict(items, budget, in_use, now=time.time(), min_idle=min_idle):
        lock = lock_of(name) if lock_of is not None else None
        if name not in in_use and _evict(root, name, members[name], last_use[name], lock):
            evicted.append(name)
    return evicted


async def bound(
    root: Path,
    budget: int,
    in_use: Collection[str] = (),
    *,
    min_idle: float = 0.0,
    item_of: Callable[[str], str] = str,
    lock_of: Callable[[str], Path] | None = None,
) -> None:
    """`trim` off the event loop, logging what it evicted. A trim that fails is logged, not raised:
    the fill that came before it succeeded, and the next fill trims again."""
    try:
        evicted = await asyncio.to_thread(
            trim, root, budget, in_use, min_idle=min_idle, item_of=item_of, lock_of=lock_of
        )
    except OSError as err:
        _log.warning("cache trim failed", root=str(root), error=str(err))
        return
    if evicted:
        _log.info("cache trimmed", root=str(root), budget_bytes=budget, evicted=evicted)


def _scan(root: Path, item_of: Callable[[str], str]) -> tuple[list[Item], dict[str, list[Path]]]:
    """The items under `root` with their top-level entries; trash is deleted on the way."""
    members: dict[str, list[Path]] = {}
    sizes: dict[str, int] = {}
    try:
        with os.scandir(root) as found:
            entries = list(found)
    except FileNotFoundError:
        return [], {}
    for entry in entries:
        if entry.name.startswith(TRASH_PREFIX):
            _delete(Path(entry.path))
            continue
        name = item_of(entry.name)
        members.setdefault(name, []).append(Path(entry.path))
        sizes[name] = sizes.get(name, 0) + size_of(Path(entry.path))
    items = [Item(name, sizes[name], _last_use(name, entries)) for name, entries in members.items()]
    return items, members


def _last_use(name: str, entries: list[Path]) -> float:
    """The modification time of the item's own entry, else of its newest; 0 if all vanished."""
    own = [entry for entry in entries if entry.name == name]
    newest = 0.0
    for entry in own or entries:
        with contextlib.suppress(FileNotFoundError):
            newest = max(newest, os.lstat(entry).st_mtime)
    return newest


def _evict(root: Path, name: str, entries: list[Path], last_use: float, lock: Path | None) -> bool:
    """Rename the item's entries to trash under its lock, then delete them; False if it is in use."""
    with _try_locked(lock) as held:
        if not held or _last_use(name, entries) > last_use:  # locked, or used since the scan
            return False
        trash = []
        # The lock file last (taking it may have made it): whoever waits on it then finds it gone.
        for entry in [*(entry for entry in entries if entry != lock), *([lock] if lock is not None else [])]:
            moved = root / f"{TRASH_PREFIX}{uuid.uuid4().hex}"
            with contextlib.suppress(FileNotFoundError):
                entry.rename(moved)
                trash.append(moved)
    for moved in trash:
        _delete(moved)
    return True


@contextlib.contextmanager
def _try_locked(lock: Path | None) -> Iterator[bool]:
    """Whether the lock at `lock` was free (then held until the block ends); True when there is none."""
    if lock is None:
        yield True
        return
    try:
        handle = lock.open("a")
    except FileNotFoundError:  # the item went away meanwhile
        yield False
        return
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _delete(path: Path) -> None:
    """Delete a file or folder no one uses any more (trash), following no link. Folders the install
    step left without write permission are opened up first; whatever still fails waits for the next trim."""
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            path.unlink()
            return
    except FileNotFoundError:
        return
    shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path):
        _open_up(path)
        shutil.rmtree(path, ignore_errors=True)


def _open_up(top: Path) -> None:
    """Make every folder under `top` (itself included) ours to list and empty; links are never followed."""
    folders = [top]
    while folders:
        folder = folders.pop()
        with contextlib.suppress(OSError):
            if stat.S_ISDIR(os.lstat(folder).st_mode):  # checked just before: trash is no one's to swap
                os.chmod(folder, 0o700)
            with os.scandir(folder) as entries:
                folders.extend(Path(entry.path) for entry in entries if entry.is_dir(follow_symlinks=False))


@contextlib.asynccontextmanager
async def locked(path: Path) -> AsyncIterator[None]:
    """Hold the exclusive lock on the file at `path`, waiting for it (off the event loop). Eviction
    renames a lock file away while holding it, so a lock got on a file no longer at `path` is let go
    and taken again on the one there now."""
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            await asyncio.to_thread(fcntl.flock, handle.fileno(), fcntl.LOCK_EX)
            try:
                if _same_file(handle.fileno(), path):
                    yield
                    return
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _same_file(fd: int, path: Path) -> bool:
    try:
        here = os.lstat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)
