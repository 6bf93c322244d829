"""The code-host interface and its activities: local git now, GitHub next, one shape for both."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Protocol

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities._heartbeat import heartbeats
from activities.codehost._git import Blob, TreeEntry
from contracts.codehost import (
    FetchTaskInput,
    LandChangesInput,
    LandChangesResult,
    PostCommentInput,
    PostedResult,
    PostReviewInput,
    PublishInput,
    PublishResult,
    TaskSpec,
)
from contracts.run import is_local_repo
from policy.repo_config import CONFIG_FILE, MAX_BYTES, RepoConfigError, load_config
from policy.untrusted import bound
from telemetry.instrument import operation

TITLE_MAX = 200

__all__ = ["Blob", "CodeHost", "CodeHostActivities", "CodeHosts", "TreeEntry"]


class CodeHost(Protocol):
    """Everything the pipeline needs from where the code lives. Every write is idempotent."""

    async def fetch_task(self, req: FetchTaskInput) -> TaskSpec: ...
    async def read_file(self, repo: str, sha: str, path: str) -> bytes | None: ...
    async def list_files(self, repo: str, sha: str) -> list[str]: ...
    async def tree(self, repo: str, sha: str) -> list[TreeEntry]:
        """Every file, link and submodule of the commit, with mode, size and object id (one git process)."""
        ...

    async def entries(self, repo: str, sha: str, paths: Sequence[str]) -> list[TreeEntry]:
        """The entries of exactly those `paths` that exist in the commit (directories included)."""
        ...

    def read_blobs(self, repo: str, object_ids: Sequence[str]) -> AsyncGenerator[Blob, None]:
        """Objects listed by `tree` or `entries`, in order, streamed from one reader; close it to stop early."""
        ...

    async def diff(self, repo: str, base_sha: str, head_sha: str) -> str: ...
    async def land_changes(self, req: LandChangesInput) -> LandChangesResult: ...
    async def publish_change(self, req: PublishInput) -> PublishResult: ...
    async def post_review(self, req: PostReviewInput) -> PostedResult: ...
    async def post_comment(self, req: PostCommentInput) -> PostedResult: ...


class CodeHosts:
    """Picks the host serving a repository reference."""

    def __init__(self, local: CodeHost, github: CodeHost | None = None) -> None:
        self._local = local
        self._github = github

    def for_repo(self, repo: str) -> CodeHost:
        if is_local_repo(repo):
            return self._local
        if self._github is None:
            raise ApplicationError(
                f"repo {repo!r}: the GitHub code host is not configured on this worker",
                type="CodeHostUnavailable",
                non_retryable=True,
            )
        return self._github


class CodeHostActivities:
    """One activity per code-host operation; each heartbeats while it runs, since a GitHub call or
    an archive download can take seconds and a lost worker must be noticed sooner than that."""

    def __init__(self, hosts: CodeHosts) -> None:
        self._hosts = hosts

    @activity.defn
    @heartbeats
    async def fetch_task(self, req: FetchTaskInput) -> TaskSpec:
        """The task, its text bounded (an issue can be megabytes), and the protected paths the
        repository's own `.forgeflow.yml` adds at the commit the run starts from."""
        host = self._hosts.for_repo(req.repo)
        async with operation("code_host", "fetch_task", {"forgeflow.code_host": type(host).__name__}):
            task = await host.fetch_task(req)
            patterns = await _repository_patterns(host, req.repo, task.base_sha)
            return task.model_copy(
                update={"title": bound(task.title, TITLE_MAX), "body": bound(task.body), "protected_paths": patterns}
            )

    @activity.defn
    @heartbeats
    async def land_changes(self, req: LandChangesInput) -> LandChangesResult:
        host = self._hosts.for_repo(req.repo)
        async with operation("code_host", "land_changes", {"forgeflow.code_host": type(host).__name__}):
            return await host.land_changes(req)

    @activity.defn
    @heartbeats
    async def publish_change(self, req: PublishInput) -> PublishResult:
        host = self._hosts.for_repo(req.repo)
        async with operation("code_host", "publish_change", {"forgeflow.code_host": type(host).__name__}):
            return await host.publish_change(req)

    @activity.defn
    @heartbeats
    async def post_review(self, req: PostReviewInput) -> PostedResult:
        host = self._hosts.for_repo(req.repo)
        async with operation("code_host", "post_review", {"forgeflow.code_host": type(host).__name__}):
            return await host.post_review(req)

    @activity.defn
    @heartbeats
    async def post_comment(self, req: PostCommentInput) -> PostedResult:
        host = self._hosts.for_repo(req.repo)
        async with operation("code_host", "post_comment", {"forgeflow.code_host": type(host).__name__}):
            return await host.post_comment(req)


async def _repository_patterns(host: CodeHost, repo: str, sha: str) -> list[str]:
    """`protected_paths` of the repository's `.forgeflow.yml` at `sha` (none without the file). A file
    that is a link, too large or invalid fails the run at once, naming the problem: a broken settings
    file must not silently drop the protections its maintainers wrote."""
    found = await host.entries(repo, sha, [CONFIG_FILE])
    if not found:
        return []
    if not found[0].is_file or (found[0].size or 0) > MAX_BYTES:
        problem = "is not a regular file (a symbolic link?)" if not found[0].is_file else "is too large"
        raise ApplicationError(f"{CONFIG_FILE} at {sha[:12]} {problem}", type="InvalidRepoConfig", non_retryable=True)
    data = await host.read_file(repo, sha, CONFIG_FILE)
    try:
        return load_config(None if data is None else data.decode("utf-8", "replace")).protected_paths
    except RepoConfigError as err:
        raise ApplicationError(f"{err} (at {sha[:12]})", type="InvalidRepoConfig", non_retryable=True) from None
