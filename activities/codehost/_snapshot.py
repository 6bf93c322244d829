"""Upload a commit's tree to the object store, once, for the sandbox (see activities.trees)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence
from typing import Protocol

from temporalio.exceptions import ApplicationError

from activities.codehost._git import Blob, TreeEntry
from activities.trees import Member, TreeArchives, pack
from contracts.repo import RepoRef


class Trees(Protocol):
    """What uploading a tree needs of a code host (every CodeHost has it)."""

    async def tree_id(self, repo: RepoRef, sha: str) -> str: ...
    async def tree(self, repo: RepoRef, sha: str) -> list[TreeEntry]: ...
    def read_blobs(self, repo: RepoRef, object_ids: Sequence[str]) -> AsyncGenerator[Blob, None]: ...


async def publish_tree(host: Trees, archives: TreeArchives, repo: RepoRef, sha: str) -> str:
    """The tree id of commit `sha`, its archive in the store (uploaded now unless it already was)."""
    tree = await host.tree_id(repo, sha)
    if await archives.has(tree):
        return tree
    entries = [entry for entry in await host.tree(repo, sha) if entry.is_file or entry.is_link]
    members: list[Member] = []
    async with contextlib.aclosing(host.read_blobs(repo, [entry.object_id for entry in entries])) as blobs:
        found = [blob async for blob in blobs]
    for entry, blob in zip(entries, found, strict=True):
        if blob.data is None:  # listed a moment ago: the repository changed under us; a retry reads again
            raise ApplicationError(
                f"repo {repo}: object {entry.object_id} ({entry.path}) went missing", type="GitError"
            )
        if entry.is_link:
            members.append(Member(entry.path, "link", blob.data))
        else:
            members.append(Member(entry.path, "file", blob.data, executable=entry.mode == "100755"))
    archive = await asyncio.to_thread(pack, members)
    await archives.put(tree, archive)
    return tree
