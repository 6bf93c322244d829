"""Blob stores for tests: a BlobStore on a local directory in one call, a commit's tree uploaded.

Here rather than in testkit/, which imports nothing of forgeflow's but contracts (tests/test_import_graph.py).
"""

from __future__ import annotations

from pathlib import Path

from activities.blobstore import BlobStore
from activities.codehost._snapshot import publish_tree
from activities.codehost.local import LocalGitHost
from activities.trees import TreeArchives
from config.settings import Settings
from contracts.repo import parse_repo
from starter.workers import object_store
from storage.store import ObjectStore


def local_blobs(path: Path) -> BlobStore:
    """A BlobStore on the local directory `path` (created), as a worker with FORGEFLOW_STORAGE_URL=path has."""
    return BlobStore(ObjectStore(str(path)))


def settings_blobs(settings: Settings) -> BlobStore:
    """The BlobStore a worker with `settings` uses: the one on its object store."""
    return BlobStore(object_store(settings))


async def upload_tree(store: ObjectStore, repo: Path, sha: str) -> str:
    """Commit `sha` of the local repository `repo` on `store`, as the code host uploads it for the
    sandbox (activities.trees); its tree id."""
    host = LocalGitHost(BlobStore(store))
    return await publish_tree(host, TreeArchives(store), parse_repo(str(repo)), sha)
