"""Remote commits as local git commits on the worker, fetched once as an archive.

A remote commit SHA maps to a local commit through `refs/forgeflow/remote/<sha>` in one cache
repository per remote repository, so agents' file reads, diffs and the sandbox cost no API calls.
Local commit SHAs differ from the remote ones (the archive has the tree, not the commit object);
the workflow only ever sees remote SHAs.

The archive goes straight into git (`git fast-import`), never onto disk: a committed symbolic link
(`dirlink -> /some/host/dir`) stays a link entry in the cached tree, as it is on the remote, instead
of becoming a link on the worker's filesystem that a later member could be written through.

The cache is bounded (`max_bytes`) and safe to delete (activities._disk_cache): each repository is
one item, and deleting it loses nothing, since the next use downloads again. Every `path()` is a use
(the LRU order); after each download, the least recently used repositories go, but never one this
process is downloading into or recording in, nor one used within IN_USE_SECONDS (a caller reads the
repository just after `local()` returns).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import io
import tarfile
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from activities import _disk_cache
from activities.codehost._git import Repo, open_repo, run_git
from policy.host_rules import mapping_ref
from policy.paths import is_dotgit

IDENTITY = b"forgeflow cache <cache@forgeflow.local> 0 +0000"  # fixed: the same archive, the same commit
IN_USE_SECONDS = 600  # a repository used this recently is never evicted


class CommitCache:
    def __init__(self, root: Path, max_bytes: int | None = None) -> None:
        """Repositories under `root`, trimmed to `max_bytes` after each download (None: unbounded)."""
        self._root = root
        self._max_bytes = max_bytes
        self._locks: dict[str, asyncio.Lock] = {}
        self._in_use: collections.Counter[str] = collections.Counter()  # folder name → activities using it

    def path(self, full_name: str) -> Path:
        """The repository's folder; asking for it counts as a use (it is what readers open)."""
        path = self._root / full_name.replace("/", "__")
        _disk_cache.touch(path)
        return path

    @contextlib.contextmanager
    def _using(self, full_name: str) -> Iterator[str]:
        """Mark the repository in use by this process (never evicted meanwhile); yields its folder name."""
        name = self.path(full_name).name
        self._in_use[name] += 1
        try:
            yield name
        finally:
            self._in_use[name] -= 1
            if not self._in_use[name]:
                del self._in_use[name]  # the set trim reads holds only names in use

    async def repo(self, full_name: str) -> Repo:
        path = self.path(full_name)
        if not path.exists():
            path.mkdir(parents=True, exist_ok=True)  # another download may make it meanwhile
            await run_git(str(path), "init", "--quiet", "--bare")
        return await open_repo(str(path))

    async def lookup(self, full_name: str, remote_sha: str) -> str | None:
        return await (await self.repo(full_name)).try_commit(mapping_ref(remote_sha))

    async def local(self, full_name: str, remote_sha: str, archive: Callable[[], Awaitable[bytes]]) -> str:
        """The local commit for `remote_sha`, downloading its archive (a .tar.gz) the first time."""
        lock = self._locks.setdefault(f"{full_name}@{remote_sha}", asyncio.Lock())
        with self._using(full_name):
            async with lock:
                found = await self.lookup(full_name, remote_sha)
                if found is not None:
                    return found
                repo = await self.repo(full_name)
                data = await archive()
                with tempfile.TemporaryDirectory() as tmp:
                    stream = Path(tmp) / "import"
                    await asyncio.to_thread(_write_import, data, stream, remote_sha)
                    # The ref moves only when the whole stream was read ("done"): no half-imported commit.
                    await repo.git("fast-import", "--quiet", "--done", stdin=stream)
                local = await repo.git("rev-parse", "--verify", f"{mapping_ref(remote_sha)}^{{commit}}")
            await self._trim()
            return local

    async def record(self, full_name: str, remote_sha: str, local_sha: str) -> None:
        """Map a remote commit we built ourselves (same tree) without downloading it."""
        with self._using(full_name):
            await (await self.repo(full_name)).git("update-ref", mapping_ref(remote_sha), local_sha)

    async def _trim(self) -> None:
        """Bound the cache; what this process is using is read live, so a use that starts meanwhile counts."""
        if self._max_bytes is not None:
            await _disk_cache.bound(self._root, self._max_bytes, self._in_use, min_idle=IN_USE_SECONDS)


def _write_import(archive: bytes, into: Path, remote_sha: str) -> None:
    """A `git fast-import` stream committing the archive's files to the mapping ref of `remote_sha`."""
    message = f"remote commit {remote_sha}\n".encode()
    with into.open("wb") as out, tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
        out.write(b"commit " + mapping_ref(remote_sha).encode() + b"\n")
        out.write(b"author " + IDENTITY + b"\ncommitter " + IDENTITY + b"\n")
        _data(out, message)
        for member in tar:
            entry = _entry(tar, member)
            if entry is not None:
                mode, path, content = entry
                out.write(b"M " + mode + b" inline " + _quoted(path) + b"\n")
                _data(out, content)
        out.write(b"done\n")


def _entry(tar: tarfile.TarFile, member: tarfile.TarInfo) -> tuple[bytes, str, bytes] | None:
    """(git mode, path, content) of a file or link in an archive whose entries sit in one top folder.

    Directories need no entry; anything else an archive of a git tree cannot hold (devices, hard
    links), and any path git would refuse, is left out."""
    _, _, path = member.name.rstrip("/").partition("/")
    parts = path.split("/")
    if not path or any(part in ("", ".", "..") or is_dotgit(part) for part in parts):
        return None
    if member.issym():
        return b"120000", path, member.linkname.encode("utf-8", "surrogateescape")
    if member.isreg():
        content = tar.extractfile(member)
        assert content is not None  # a regular member always has a body
        return (b"100755" if member.mode & 0o111 else b"100644"), path, content.read()
    return None


def _data(out: BinaryIO, content: bytes) -> None:
    out.write(b"data %d\n" % len(content))
    out.write(content)
    out.write(b"\n")


def _quoted(path: str) -> bytes:
    """A path in git's C-style quoting, so any byte (a newline, a quote) stays part of the name."""
    quoted = bytearray(b'"')
    for byte in path.encode("utf-8", "surrogateescape"):
        if byte in b'"\\':
            quoted += b"\\" + bytes([byte])
        elif byte < 0x20 or byte == 0x7F:
            quoted += b"\\%03o" % byte
        else:
            quoted.append(byte)
    return bytes(quoted + b'"')
