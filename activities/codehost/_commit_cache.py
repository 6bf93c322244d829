"""Remote commits as local git commits on the worker, fetched once as an archive.

A remote commit SHA maps to a local commit through `refs/forgeflow/remote/<sha>` in one cache
repository per remote repository, so agents' file reads, diffs and the sandbox cost no API calls.
Local commit SHAs differ from the remote ones (the archive has the tree, not the commit object);
the workflow only ever sees remote SHAs.

The archive goes straight into git (`git fast-import`), never onto disk: a committed symbolic link
(`dirlink -> /some/host/dir`) stays a link entry in the cached tree, as it is on the remote, instead
of becoming a link on the worker's filesystem that a later member could be written through.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import BinaryIO

from activities.codehost._git import Repo, open_repo, run_git
from policy.host_rules import mapping_ref
from policy.paths import is_dotgit

IDENTITY = b"forgeflow cache <cache@forgeflow.local> 0 +0000"  # fixed: the same archive, the same commit


class CommitCache:
    def __init__(self, root: Path) -> None:
        self._root = root
        self._locks: dict[str, asyncio.Lock] = {}

    def path(self, full_name: str) -> Path:
        return self._root / full_name.replace("/", "__")

    async def repo(self, full_name: str) -> Repo:
        path = self.path(full_name)
        if not path.exists():
            path.mkdir(parents=True)
            await run_git(str(path), "init", "--quiet", "--bare")
        return await open_repo(str(path))

    async def lookup(self, full_name: str, remote_sha: str) -> str | None:
        return await (await self.repo(full_name)).try_commit(mapping_ref(remote_sha))

    async def local(self, full_name: str, remote_sha: str, archive: Callable[[], Awaitable[bytes]]) -> str:
        """The local commit for `remote_sha`, downloading its archive (a .tar.gz) the first time."""
        lock = self._locks.setdefault(f"{full_name}@{remote_sha}", asyncio.Lock())
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
            return await repo.git("rev-parse", "--verify", f"{mapping_ref(remote_sha)}^{{commit}}")

    async def record(self, full_name: str, remote_sha: str, local_sha: str) -> None:
        """Map a remote commit we built ourselves (same tree) without downloading it."""
        await (await self.repo(full_name)).git("update-ref", mapping_ref(remote_sha), local_sha)


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
