"""The code-host interface and its activities: one host per kind of repository reference, one shape for all."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import Protocol, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities._heartbeat import heartbeats
from activities.codehost._git import Blob, TreeEntry
from activities.codehost._snapshot import publish_tree
from activities.trees import TreeArchives
from contracts.codehost import (
    CommitSnapshot,
    FetchTaskInput,
    LandChangesInput,
    LandChangesResult,
    PostCommentInput,
    PostedResult,
    PostReviewInput,
    PublishInput,
    PublishResult,
    ReportStageInput,
    SnapshotInput,
    TaskSpec,
)
from contracts.repo import KINDS, RepoRef
from policy.repo_config import CONFIG_FILE, MAX_BYTES, RepoConfig, RepoConfigError, load_config
from policy.untrusted import bound
from telemetry.instrument import operation

TITLE_MAX = 200

__all__ = ["Blob", "CodeHost", "CodeHostActivities", "CodeHosts", "TreeEntry"]

T = TypeVar("T")


class CodeHost(Protocol):
    """Everything the pipeline needs from where the code lives. Every write is idempotent."""

    async def fetch_task(self, req: FetchTaskInput) -> TaskSpec: ...
    async def read_file(self, repo: RepoRef, sha: str, path: str) -> bytes | None: ...
    async def list_files(self, repo: RepoRef, sha: str) -> list[str]: ...
    async def tree_id(self, repo: RepoRef, sha: str) -> str:
        """The id of the commit's tree (the key its files are uploaded under for the sandbox)."""
        ...

    async def tree(self, repo: RepoRef, sha: str) -> list[TreeEntry]:
        """Every file, link and submodule of the commit, with mode, size and object id (one git process)."""
        ...

    async def entries(self, repo: RepoRef, sha: str, paths: Sequence[str]) -> list[TreeEntry]:
        """The entries of exactly those `paths` that exist in the commit (directories included)."""
        ...

    def read_blobs(self, repo: RepoRef, object_ids: Sequence[str]) -> AsyncGenerator[Blob, None]:
        """Objects listed by `tree` or `entries`, in order, streamed from one reader; close it to stop early."""
        ...

    async def diff(self, repo: RepoRef, base_sha: str, head_sha: str) -> str: ...
    async def land_changes(self, req: LandChangesInput) -> LandChangesResult: ...
    async def publish_change(self, req: PublishInput) -> PublishResult: ...
    async def post_review(self, req: PostReviewInput) -> PostedResult: ...
    async def post_comment(self, req: PostCommentInput) -> PostedResult: ...
    async def report_stage(self, req: ReportStageInput) -> PostedResult:
        """The run's stage on a commit of its pull request, where the host shows such things."""
        ...


class CodeHosts:
    """The code host serving each kind of repository reference (a `RepoRef.kind`, see contracts.repo).

    Built from one table, kind → host; a kind mapped to None (GitHub without a token) is not served."""

    def __init__(self, hosts: Mapping[str, CodeHost | None]) -> None:
        unknown = sorted(set(hosts) - set(KINDS))
        if unknown:  # a typo in the table would otherwise surface as "not configured" at run time
            raise ValueError(f"no repository shape for code host kind(s) {unknown}: known kinds are {list(KINDS)}")
        self._hosts = {kind: host for kind, host in hosts.items() if host is not None}

    def for_repo(self, repo: RepoRef) -> CodeHost:
        host = self._hosts.get(repo.kind)
        if host is None:
            raise ApplicationError(
                f"repo {repo}: the {repo.kind} code host is not configured on this worker",
                type="CodeHostUnavailable",
                non_retryable=True,
            )
        return host


class CodeHostActivities:
    """One activity per code-host operation; each heartbeats while it runs, since a GitHub call or
    an archive download can take seconds and a lost worker must be noticed sooner than that.

    The commits a run starts from and makes reach the sandbox by content: fetch_task and land_changes
    upload each one's tree to the object store (`archives`) and return its id."""

    def __init__(self, hosts: CodeHosts, archives: TreeArchives) -> None:
        self._hosts = hosts
        self._archives = archives

    async def _on_host(self, name: str, repo: RepoRef, call: Callable[[CodeHost], Awaitable[T]]) -> T:
        """`call` on the host serving `repo`, inside a span named after the operation."""
        host = self._hosts.for_repo(repo)
        async with operation("code_host", name, {"forgeflow.code_host": type(host).__name__}):
            return await call(host)

    @activity.defn
    @heartbeats
    async def fetch_task(self, req: FetchTaskInput) -> TaskSpec:
        """The task, its text bounded (an issue can be megabytes), and the protected paths the
        repository's own `.forgeflow.yml` adds at the commit the run starts from."""
        return await self._on_host("fetch_task", req.repo, lambda host: self._fetch_task(host, req))

    @activity.defn
    @heartbeats
    async def land_changes(self, req: LandChangesInput) -> LandChangesResult:
        return await self._on_host("land_changes", req.repo, lambda host: self._land_changes(host, req))

    @activity.defn
    @heartbeats
    async def publish_change(self, req: PublishInput) -> PublishResult:
        return await self._on_host("publish_change", req.repo, lambda host: host.publish_change(req))

    @activity.defn
    @heartbeats
    async def post_review(self, req: PostReviewInput) -> PostedResult:
        return await self._on_host("post_review", req.repo, lambda host: host.post_review(req))

    @activity.defn
    @heartbeats
    async def post_comment(self, req: PostCommentInput) -> PostedResult:
        return await self._on_host("post_comment", req.repo, lambda host: host.post_comment(req))

    @activity.defn
    @heartbeats
    async def report_stage(self, req: ReportStageInput) -> PostedResult:
        return await self._on_host("report_stage", req.repo, lambda host: host.report_stage(req))

    @activity.defn
    @heartbeats
    async def commit_snapshot(self, req: SnapshotInput) -> CommitSnapshot:
        """A commit's tree on the object store (for the sandbox) and its diff from `base_sha`."""

        async def snapshot(host: CodeHost) -> CommitSnapshot:
            tree = await publish_tree(host, self._archives, req.repo, req.sha)
            patch = await host.diff(req.repo, req.base_sha, req.sha)
            # The hosts give git's output without its last newline, which a patch file needs.
            return CommitSnapshot(tree=tree, patch=patch + "\n" if patch and not patch.endswith("\n") else patch)

        return await self._on_host("commit_snapshot", req.repo, snapshot)

    async def _fetch_task(self, host: CodeHost, req: FetchTaskInput) -> TaskSpec:
        task = await host.fetch_task(req)
        settings = await _repository_settings(host, req.repo, task.base_sha)
        base_tree = await publish_tree(host, self._archives, req.repo, task.base_sha)
        head_tree = await publish_tree(host, self._archives, req.repo, task.head_sha) if task.head_sha else None
        return task.model_copy(
            update={
                "title": bound(task.title, TITLE_MAX),
                "body": bound(task.body),
                "protected_paths": settings.protected_paths,
                "command_roles": settings.command_roles,
                "team": settings.team,
                "base_tree": base_tree,
                "head_tree": head_tree,
            }
        )

    async def _land_changes(self, host: CodeHost, req: LandChangesInput) -> LandChangesResult:
        landed = await host.land_changes(req)
        tree = await publish_tree(host, self._archives, req.repo, landed.commit_sha)
        return landed.model_copy(update={"tree": tree})


async def _repository_settings(host: CodeHost, repo: RepoRef, sha: str) -> RepoConfig:
    """The repository's `.forgeflow.yml` at `sha` (the defaults without the file). A file that is a
    link, too large or invalid fails the run at once, naming the problem: a broken settings file must
    not silently drop the protections (protected paths, commands off) its maintainers wrote."""
    found = await host.entries(repo, sha, [CONFIG_FILE])
    if not found:
        return RepoConfig()
    if not found[0].is_file or (found[0].size or 0) > MAX_BYTES:
        problem = "is not a regular file (a symbolic link?)" if not found[0].is_file else "is too large"
        raise ApplicationError(f"{CONFIG_FILE} at {sha[:12]} {problem}", type="InvalidRepoConfig", non_retryable=True)
    data = await host.read_file(repo, sha, CONFIG_FILE)
    try:
        return load_config(None if data is None else data.decode("utf-8", "replace"))
    except RepoConfigError as err:
        raise ApplicationError(f"{err} (at {sha[:12]})", type="InvalidRepoConfig", non_retryable=True) from None
