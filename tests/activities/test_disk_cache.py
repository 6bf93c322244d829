"""The local caches are bounded and safe to delete: the eviction policy as a table, then the real
filesystem (order, what is in use, trash, links), the install cache and the GitHub commit cache."""

from __future__ import annotations

import asyncio
import fcntl
import io
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from activities import _disk_cache
from activities._disk_cache import Item, size_of, to_evict, trim
from activities.codehost._commit_cache import CommitCache
from activities.codehost._git import run_git
from activities.sandbox import _install
from activities.sandbox._cgroup import Usage
from activities.sandbox._layout import Mount
from activities.sandbox._limited import Finished
from config.settings import Settings

NOW = 10_000.0
A, B, C = Item("a", 100, 1.0), Item("b", 100, 2.0), Item("c", 100, 3.0)


@pytest.mark.parametrize(
    ("items", "budget", "in_use", "min_idle", "evicted"),
    [
        ([A, B, C], 300, set(), 0, []),  # within budget: nothing
        ([A, B, C], 250, set(), 0, ["a"]),  # the least recently used first
        ([C, A, B], 100, set(), 0, ["a", "b"]),  # order of the listing is beside the point
        ([A, B, C], 0, set(), 0, ["a", "b", "c"]),  # everything, if nothing fits
        ([A, B, C], 250, {"a"}, 0, ["b"]),  # in use: skipped, the next one goes
        ([A, B, C], 150, {"a", "b", "c"}, 0, []),  # all in use: stays over budget
        ([A, B, Item("c", 100, NOW - 5)], 150, set(), 60, ["a", "b"]),  # used a moment ago: kept
        ([Item("a", 100, NOW - 5), B], 50, set(), 60, ["b"]),
        ([Item("y", 100, 1.0), Item("x", 100, 1.0)], 100, set(), 0, ["x"]),  # a tie goes by name
        ([Item("big", 1000, 5.0), A], 500, set(), 0, ["a", "big"]),  # LRU, not the largest first
        ([], 0, set(), 0, []),
    ],
)
def test_eviction_policy(items: list[Item], budget: int, in_use: set[str], min_idle: float, evicted: list[str]) -> None:
    assert to_evict(items, budget, in_use, now=NOW, min_idle=min_idle) == evicted


def _item(root: Path, name: str, size: int, last_use: float) -> Path:
    folder = root / name
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "data").write_bytes(b"x" * size)
    os.utime(folder, (last_use, last_use))
    return folder


def _names(root: Path) -> set[str]:
    return {path.name for path in root.iterdir()}


def test_trim_evicts_least_recently_used_until_within_budget(tmp_path: Path) -> None:
    for name, last_use in (("a", 3000.0), ("b", 1000.0), ("c", 2000.0)):
        _item(tmp_path, name, 10_000, last_use)
    one = size_of(tmp_path / "a")
    assert 10_000 <= one < 20_000  # the file plus its folders' own entries
    assert trim(tmp_path, 2 * one) == ["b"]
    assert _names(tmp_path) == {"a", "c"}  # no trash left behind
    _disk_cache.touch(tmp_path / "c")  # a use: now a is the oldest
    assert trim(tmp_path, one) == ["a"]
    assert _names(tmp_path) == {"c"}


def test_items_in_use_or_used_lately_are_never_evicted(tmp_path: Path) -> None:
    _item(tmp_path, "a", 10_000, 1000.0)
    _item(tmp_path, "b", 10_000, 2000.0)
    _item(tmp_path, "fresh", 10_000, time.time())
    assert trim(tmp_path, 0, {"a"}, min_idle=600) == ["b"]
    assert _names(tmp_path) == {"a", "fresh"}


def test_an_item_whose_lock_is_held_is_in_use(tmp_path: Path) -> None:
    """Entries named `<item>.<suffix>` belong to one item, guarded by `<item>.lock` (the install cache's layout)."""
    for name, last_use in (("k1", 1000.0), ("k2", 2000.0)):
        _item(tmp_path, name, 10_000, last_use)
        (tmp_path / f"{name}.lock").touch()
    _item(tmp_path, "k2.partial", 10, 2000.0)

    def item_of(name: str) -> str:
        return name.partition(".")[0]

    def lock_of(item: str) -> Path:
        return tmp_path / f"{item}.lock"

    with (tmp_path / "k1.lock").open("a") as held:  # another process installing k1
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        assert trim(tmp_path, 0, item_of=item_of, lock_of=lock_of) == ["k2"]
    assert _names(tmp_path) == {"k1", "k1.lock"}  # k2 went whole: its folder, partial and lock file
    assert trim(tmp_path, 0, item_of=item_of, lock_of=lock_of) == ["k1"]
    assert _names(tmp_path) == set()


def test_trash_left_by_a_crash_is_removed_by_the_next_trim(tmp_path: Path) -> None:
    keep = _item(tmp_path, "keep", 10, 1000.0)
    trash = tmp_path / ".trash-0123"
    (trash / "half" / "locked").mkdir(parents=True)
    (trash / "half" / "locked" / "file").write_text("left by an install step")
    (trash / "half" / "locked").chmod(0o500)  # a folder its files can't be deleted from, as is
    (tmp_path / ".trash-4567").write_text("a trashed file")
    assert trim(tmp_path, 10**9) == []  # within budget: trash goes all the same
    assert _names(tmp_path) == {"keep"}
    assert keep.is_dir()


def test_links_are_measured_and_removed_as_links_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big").write_bytes(b"x" * 1_000_000)
    root = tmp_path / "cache"
    item = _item(root, "a", 10, 1000.0)
    os.symlink(outside / "big", item / "sub" / "filelink")
    os.symlink(outside, item / "dirlink")
    os.symlink(outside, root / "toplink")  # an item that is itself a link
    os.utime(root / "toplink", (500.0, 500.0), follow_symlinks=False)
    os.utime(item, (1000.0, 1000.0))
    assert size_of(item) < 20_000
    assert size_of(root / "toplink") < 1000
    assert sorted(trim(root, 0)) == ["a", "toplink"]
    assert _names(root) == set()
    assert (outside / "big").stat().st_size == 1_000_000  # what the links led to is untouched


def test_a_missing_root_is_an_empty_cache(tmp_path: Path) -> None:
    assert trim(tmp_path / "gone", 0) == []


async def test_a_waiter_whose_lock_file_was_evicted_locks_the_new_one(tmp_path: Path) -> None:
    lock = tmp_path / "k.lock"
    first_in, let_go = asyncio.Event(), asyncio.Event()
    seen = []

    async def first() -> None:
        async with _disk_cache.locked(lock):
            first_in.set()
            await let_go.wait()
            lock.rename(tmp_path / ".trash-lock")  # what eviction does, holding the lock

    async def second() -> None:
        await first_in.wait()
        async with _disk_cache.locked(lock):
            seen.append((os.stat(lock).st_ino, (tmp_path / ".trash-lock").stat().st_ino))

    task = asyncio.gather(first(), second())
    await first_in.wait()
    await asyncio.sleep(0.1)  # second is waiting on the old file
    let_go.set()
    await asyncio.wait_for(task, 10)
    [(held, evicted)] = seen
    assert held != evicted  # it holds the file at the path now, not the one renamed away


# --- the install cache -----------------------------------------------------------------------


class FakeInstall:
    """An install step that leaves a node_modules folder of `size` bytes in the workspace."""

    def __init__(self, workspace: Path, size: int = 10_000) -> None:
        self.workspace, self.size, self.runs = workspace, size, 0

    async def __call__(
        self, command: list[str], mounts: list[Mount], env: dict[str, str], log: Path, network: bool
    ) -> Finished:
        self.runs += 1
        _leave_node_modules(self.workspace, self.size, log)
        return Finished(exit_code=0, stopped_for=None, usage=Usage(), output_bytes=10, enforced_by="rlimit")


def _leave_node_modules(workspace: Path, size: int, log: Path) -> None:
    modules = workspace / "node_modules" / "dep"
    modules.mkdir(parents=True)
    (modules / "index.js").write_bytes(b"x" * size)
    log.write_text("installed\n")


async def _prepare(tmp_path: Path, key: str, step: FakeInstall, max_bytes: int | None) -> _install.Prepared:
    logs = Path(tempfile.mkdtemp(dir=tmp_path))
    return await _install.prepare(
        command=["npm", "ci"],
        workspace=step.workspace,
        cache_dir=tmp_path / "cache",
        key=key,
        python_env=False,
        network=False,
        run_step=step,
        log_dir=logs,
        max_bytes=max_bytes,
    )


@pytest.fixture
def install(tmp_path: Path) -> FakeInstall:
    (tmp_path / "ws").mkdir()
    return FakeInstall(tmp_path / "ws")


async def test_install_cache_evicts_old_keys_but_not_the_one_prepared_or_one_locked(
    tmp_path: Path, install: FakeInstall
) -> None:
    cache = tmp_path / "cache"
    for key in ("old1", "old2"):
        assert not (await _prepare(tmp_path, key, install, None)).failed
        os.utime(cache / key, (1000.0, 1000.0))  # last used long ago
    with (cache / "old1.lock").open("a") as held:  # another worker is installing or reading old1
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        prepared = await _prepare(tmp_path, "new", install, 1)  # a budget nothing fits in
    assert prepared.report is not None and not prepared.report.cached
    assert [Path(m.source) for m in prepared.mounts] == [cache / "new" / "node_modules"]
    assert _names(cache) == {"old1", "old1.lock", "new", "new.lock"}  # old2 evicted, lock file and all
    again = await _prepare(tmp_path, "old2", install, None)
    assert again.report is not None and not again.report.cached  # built again after eviction
    assert install.runs == 4


async def test_install_cache_can_be_deleted_between_two_uses(tmp_path: Path, install: FakeInstall) -> None:
    first = await _prepare(tmp_path, "k", install, 10**9)
    reused = await _prepare(tmp_path, "k", install, 10**9)
    assert reused.report is not None and reused.report.cached
    shutil.rmtree(tmp_path / "cache")
    second = await _prepare(tmp_path, "k", install, 10**9)
    assert second.report is not None and not second.report.cached and second.report.exit_code == 0
    assert install.runs == 2
    assert second.mounts == first.mounts and _names(Path(second.mounts[0].source, "dep")) == {"index.js"}


# --- the GitHub commit cache -----------------------------------------------------------------


def _archive(files: dict[str, bytes]) -> bytes:
    """A GitHub-style tarball: every member under one top folder."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path, content in files.items():
            info = tarfile.TarInfo(f"acme-calc-0123/{path}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


class Downloads:
    def __init__(self) -> None:
        self.count = 0

    def of(self, files: dict[str, bytes], gate: asyncio.Event | None = None) -> Callable[[], Awaitable[bytes]]:
        async def archive() -> bytes:
            if gate is not None:
                await gate.wait()
            self.count += 1
            return _archive(files)

        return archive


async def _read(cache: CommitCache, full_name: str, local: str, path: str) -> bytes:
    result = await run_git(str(cache.path(full_name)), "cat-file", "blob", f"{local}:{path}")
    assert result.ok, result.stderr
    return result.stdout


async def test_commit_cache_deleted_while_idle_downloads_again(tmp_path: Path) -> None:
    cache, downloads = CommitCache(tmp_path / "repos", max_bytes=10**9), Downloads()
    files = {"calc/__init__.py": b"VALUE = 1\n"}
    first = await cache.local("acme/calc", "a" * 40, downloads.of(files))
    assert await cache.local("acme/calc", "a" * 40, downloads.of(files)) == first
    assert downloads.count == 1
    shutil.rmtree(tmp_path / "repos")
    assert await cache.lookup("acme/calc", "a" * 40) is None  # gone, and nothing breaks
    again = await cache.local("acme/calc", "a" * 40, downloads.of(files))
    assert downloads.count == 2
    assert again == first  # the same archive makes the same commit
    assert await _read(cache, "acme/calc", again, "calc/__init__.py") == b"VALUE = 1\n"


async def test_commit_cache_evicts_old_repositories_but_none_in_use(tmp_path: Path) -> None:
    root = tmp_path / "repos"
    cache, downloads = CommitCache(root, max_bytes=1), Downloads()  # nothing fits: only use protects
    for name in ("acme/old", "acme/busy"):
        await CommitCache(root).local(name, "a" * 40, downloads.of({"f": b"old\n"}))
        os.utime(root / name.replace("/", "__"), (1000.0, 1000.0))
    gate = asyncio.Event()
    busy = asyncio.create_task(cache.local("acme/busy", "b" * 40, downloads.of({"f": b"busy\n"}, gate)))
    await asyncio.sleep(0.2)  # busy is waiting for its download, its repository old and in use
    os.utime(root / "acme__busy", (1000.0, 1000.0))
    local = await cache.local("acme/new", "c" * 40, downloads.of({"f": b"new\n"}))
    assert _names(root) == {"acme__busy", "acme__new"}  # old evicted; the one just used and the busy one kept
    assert await _read(cache, "acme/new", local, "f") == b"new\n"
    gate.set()
    busy_local = await busy
    assert await _read(cache, "acme/busy", busy_local, "f") == b"busy\n"


def test_the_sandbox_worker_gets_the_cache_bound() -> None:
    env = Settings.model_validate({"FORGEFLOW_CACHE_MAX_MB": "512"}).sandbox_worker_env()
    assert env["FORGEFLOW_CACHE_MAX_MB"] == "512"
