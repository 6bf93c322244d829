"""The code-host interface and its activities: local git now, GitHub next, one shape for both."""

from __future__ import annotations

from typing import Protocol

from temporalio import activity

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
from telemetry.instrument import operation


class CodeHost(Protocol):
    """Everything the pipeline needs from where the code lives. Every write is idempotent."""

    async def fetch_task(self, req: FetchTaskInput) -> TaskSpec: ...
    async def read_file(self, repo: str, sha: str, path: str) -> bytes | None: ...
    async def list_files(self, repo: str, sha: str) -> list[str]: ...
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
            from temporalio.exceptions import ApplicationError

            raise ApplicationError(
                f"repo {repo!r}: the GitHub code host is not configured on this worker",
                type="CodeHostUnavailable",
                non_retryable=True,
            )
        return self._github


class CodeHostActivities:
    def __init__(self, hosts: CodeHosts) -> None:
        self._hosts = hosts

    @activity.defn
    async def fetch_task(self, req: FetchTaskInput) -> TaskSpec:
        host = self._hosts.for_repo(req.repo)
        async with operation("code_host", "fetch_task", {"forgeflow.code_host": type(host).__name__}):
            return await host.fetch_task(req)

    @activity.defn
    async def land_changes(self, req: LandChangesInput) -> LandChangesResult:
        host = self._hosts.for_repo(req.repo)
        async with operation("code_host", "land_changes", {"forgeflow.code_host": type(host).__name__}):
            return await host.land_changes(req)

    @activity.defn
    async def publish_change(self, req: PublishInput) -> PublishResult:
        host = self._hosts.for_repo(req.repo)
        async with operation("code_host", "publish_change", {"forgeflow.code_host": type(host).__name__}):
            return await host.publish_change(req)

    @activity.defn
    async def post_review(self, req: PostReviewInput) -> PostedResult:
        host = self._hosts.for_repo(req.repo)
        async with operation("code_host", "post_review", {"forgeflow.code_host": type(host).__name__}):
            return await host.post_review(req)

    @activity.defn
    async def post_comment(self, req: PostCommentInput) -> PostedResult:
        host = self._hosts.for_repo(req.repo)
        async with operation("code_host", "post_comment", {"forgeflow.code_host": type(host).__name__}):
            return await host.post_comment(req)
