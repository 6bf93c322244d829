"""Remote commits as local git commits on the worker, fetched once as an archive.

A remote commit SHA maps to a local commit through `refs/forgeflow/remote/<sha>` in one cache
repository per remote repository, so agents' file reads, diffs and the sandbox cost no API calls.
Local commit SHAs differ from the remote ones (the archive has the tree, not the commit object);
the workflow only ever sees remote SHAs.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from activities._git import Repo, open_repo, run_git

IDENTITY = {
    "GIT_AUTHOR_NAME": "forgeflow cache",
    "GIT_AUTHOR_EMAIL": "cache@forgeflow.local",
    "GIT_COMMITTER_NAME": "forgeflow cache",
    "GIT_COMMITTER_EMAIL": "cache@forgeflow.local",
    "GIT_AUTHOR_DATE": "@0 +0000",
    "GIT_COMMITTER_DATE": "@0 +0000",
}


def mapping_ref(remote_sha: str) -> str:
    return f"refs/forgeflow/remote/{remote_sha}"


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
            with tempfile.TemporaryDirectory() as tmp:
                files = Path(tmp) / "files"
                await asyncio.to_thread(_extract, await archive(), files)
                local = await _commit_tree_of(repo, files, Path(tmp) / "index", remote_sha)
            await repo.git("update-ref", mapping_ref(remote_sha), local)
            return local

    async def record(self, full_name: str, remote_sha: str, local_sha: str) -> None:
        """Map a remote commit we built ourselves (same tree) without downloading it."""
        await (await self.repo(full_name)).git("update-ref", mapping_ref(remote_sha), local_sha)


def _extract(data: bytes, into: Path) -> None:
    """Unpack an archive whose entries sit in one top-level folder (as GitHub's do), dropping it."""
    into.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        members = []
        for member in tar.getmembers():
            _, _, rest = member.name.partition("/")
            if not rest:
                continue
            member.name = rest
            members.append(member)
        tar.extractall(into, members=members, filter="data")  # refuses absolute paths, .., devices


async def _commit_tree_of(repo: Repo, files: Path, index: Path, remote_sha: str) -> str:
    env = {**IDENTITY, "GIT_INDEX_FILE": str(index), "GIT_WORK_TREE": str(files)}
    await repo.git("add", "--all", "--force", env=env)
    tree = await repo.git("write-tree", env=env)
    return await repo.git("commit-tree", tree, "-m", f"remote commit {remote_sha}", env=env)
