"""A commit's files as one object in the store, keyed by its git tree id: what the sandbox tests.

Whoever first reads or makes a commit (the code host's fetch_task and land_changes) uploads its tree
once, as `trees/<tree id>.tar.gz` on the run's object store (FORGEFLOW_STORAGE_URL); the sandbox
worker downloads it by that key, so it never opens a path on another host and holds no repository.
A tree id names content, so a second upload of the same tree is skipped, and any worker that shares
the store finds it.

The archive is a gzip-compressed POSIX tar whose members are, sorted by path, the tree's regular files
(mode 0644, or 0755 for an executable) and symbolic links (their target as committed, never resolved);
no folders (they follow from the paths) and no submodules (a git link has no content here, and a
sandbox could not fetch one). Times, owners and the gzip header are fixed: one tree, one archive.
Reading one yields the same members back, and refuses any other kind of member.
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from storage.store import ObjectMissing, ObjectStore

PREFIX = "trees"
COMPRESSION = 1  # gzip level: source code shrinks 3-5x even at 1, and level 1 is the fastest
_TREE_ID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")  # SHA-1 or SHA-256 repositories


class TreeArchiveError(ValueError):
    """An archive that is not what `pack` writes (another kind of member, a damaged stream)."""


class TreeMissing(LookupError):
    """No archive of the tree in the store (a worker on another FORGEFLOW_STORAGE_URL?)."""


@dataclass(frozen=True)
class Member:
    """One entry of a tree: a file's bytes, or a link's target."""

    path: str
    kind: Literal["file", "link"]
    data: bytes  # a file's content; a link's target, as committed
    executable: bool = False


def object_key(tree: str) -> str:
    """The store key of a tree's archive; ValueError if `tree` is not a tree id."""
    if not _TREE_ID.fullmatch(tree):
        raise ValueError(f"not a git tree id: {tree!r}")
    return f"{PREFIX}/{tree}.tar.gz"


def pack(members: Iterable[Member]) -> bytes:
    """The archive of `members` (in path order, whatever order they come in)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in sorted(members, key=lambda m: m.path):
            info = tarfile.TarInfo(member.path)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if member.kind == "link":
                info.type = tarfile.SYMTYPE
                info.linkname = member.data.decode("utf-8", "surrogateescape")
                info.mode = 0o777
                tar.addfile(info)
            else:
                info.size = len(member.data)
                info.mode = 0o755 if member.executable else 0o644
                tar.addfile(info, io.BytesIO(member.data))
    return gzip.compress(raw.getvalue(), compresslevel=COMPRESSION, mtime=0)


def unpack(archive: bytes) -> Iterator[Member]:
    """The members of an archive `pack` wrote; TreeArchiveError for anything else in it."""
    try:
        raw = gzip.decompress(archive)
    except (OSError, EOFError) as err:
        raise TreeArchiveError(f"not a gzip stream: {err}") from None
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for info in tar:
                if info.issym():
                    yield Member(info.name, "link", info.linkname.encode("utf-8", "surrogateescape"))
                elif info.isreg():
                    content = tar.extractfile(info)
                    assert content is not None  # a regular member always has a body
                    yield Member(info.name, "file", content.read(), executable=bool(info.mode & 0o111))
                else:
                    raise TreeArchiveError(f"{info.name!r} is neither a file nor a symbolic link")
    except tarfile.TarError as err:
        raise TreeArchiveError(f"not a tar archive: {err}") from None


class TreeArchives:
    """Trees' archives on one object store."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    async def has(self, tree: str) -> bool:
        return await self._store.exists_async(object_key(tree))

    async def put(self, tree: str, archive: bytes) -> None:
        await self._store.put_async(object_key(tree), archive)

    async def get(self, tree: str) -> bytes:
        try:
            return await self._store.get_async(object_key(tree))
        except ObjectMissing:
            raise TreeMissing(f"tree {tree} is not in the store {self._store.url} (under {PREFIX}/)") from None
