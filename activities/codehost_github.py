"""The GitHub code host through githubkit (its own retries off: Temporal owns them).

This part reads — repository, default branch, issue with comments, code at a commit (one archive
download per commit, cached on the worker) — and posts issue comments exactly once (a hidden
marker per run and step). Commits, pull requests and reviews through the Git Data and Pulls APIs
are the rest of issue 4; until then those operations fail the run with a clear message.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

from githubkit import GitHub, Response
from githubkit.exception import RequestFailed
from temporalio.exceptions import ApplicationError

from activities._commit_cache import CommitCache
from activities._git import run_git
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
from policy.retry import classify_github

UNSUPPORTED = "HostOperationUnsupported"


def marker(run_id: str, step: str) -> str:
    return f"<!-- forgeflow:{run_id}:{step} -->"


async def call(request: Awaitable[Response[Any]], what: str) -> Any:
    """The JSON of one API call; failures become ApplicationErrors that say what was missing."""
    try:
        return (await request).json()
    except RequestFailed as err:
        status, headers = err.response.status_code, dict(err.response.headers)
        decision = classify_github(status, headers)
        delay = timedelta(seconds=decision.delay_seconds) if decision.delay_seconds is not None else None
        why = {404: f"{what} not found, or the token cannot see it", 401: "the GitHub token was refused"}.get(status)
        message = f"{decision.reason} ({why or what})"
        kind = "GitHubNotFound" if status == 404 else "GitHubRequestFailed"
        raise ApplicationError(
            message, type=kind, non_retryable=not decision.retryable, next_retry_delay=delay
        ) from None


def _split(repo: str) -> tuple[str, str]:
    owner, _, name = repo.partition("/")
    return owner, name


class GitHubHost:
    def __init__(self, github: GitHub[Any], cache: CommitCache) -> None:
        self._gh = github
        self._cache = cache

    async def fetch_task(self, req: FetchTaskInput) -> TaskSpec:
        owner, name = _split(req.repo)
        info = await call(self._gh.rest.repos.async_get(owner, name), f"repository {req.repo}")
        base_branch = req.base_ref or str(info["default_branch"])
        commit = await call(self._gh.rest.repos.async_get_commit(owner, name, base_branch), f"{req.repo}@{base_branch}")
        base_sha = str(commit["sha"])
        await self._local(req.repo, base_sha)
        title, body, source = await self._task_text(req)
        return TaskSpec(
            title=title,
            body=body,
            source=source,
            base_sha=base_sha,
            base_branch=base_branch,
            sandbox_repo_path=str(self._cache.path(req.repo)),
        )

    async def _task_text(self, req: FetchTaskInput) -> tuple[str, str, str]:
        if req.issue_number is None:
            spec = req.spec_content or ""
            first = next((line.lstrip("# ").strip() for line in spec.splitlines() if line.strip()), "spec")
            return first[:120], spec, "spec"
        owner, name = _split(req.repo)
        what = f"issue #{req.issue_number} in {req.repo}"
        issue = await call(self._gh.rest.issues.async_get(owner, name, req.issue_number), what)
        comments = await call(self._gh.rest.issues.async_list_comments(owner, name, req.issue_number), what)
        thread = "".join(f"\n\n--- comment by @{c['user']['login']} ---\n{c['body']}" for c in comments)
        return str(issue["title"]), f"{issue.get('body') or ''}{thread}", f"issue #{req.issue_number}"

    async def _local(self, repo: str, sha: str) -> str:
        owner, name = _split(repo)

        async def archive() -> bytes:
            response = await self._gh.rest.repos.async_download_tarball_archive(owner, name, sha)
            return response.content

        try:
            return await self._cache.local(repo, sha, archive)
        except RequestFailed as err:
            raise ApplicationError(f"github: archive of {repo}@{sha} failed: HTTP {err.response.status_code}") from None

    async def read_file(self, repo: str, sha: str, path: str) -> bytes | None:
        local = await self._local(repo, sha)
        result = await run_git(str(self._cache.path(repo)), "cat-file", "blob", f"{local}:{path}")
        return result.stdout if result.ok else None

    async def list_files(self, repo: str, sha: str) -> list[str]:
        local = await self._local(repo, sha)
        result = await run_git(str(self._cache.path(repo)), "ls-tree", "-r", "--name-only", local)
        return result.text.splitlines()

    async def diff(self, repo: str, base_sha: str, head_sha: str) -> str:
        base, head = await self._local(repo, base_sha), await self._local(repo, head_sha)
        return (await run_git(str(self._cache.path(repo)), "diff", "--no-color", "--no-ext-diff", base, head)).text

    async def post_comment(self, req: PostCommentInput) -> PostedResult:
        if req.issue_number is None:
            raise ApplicationError(
                "a GitHub comment needs an issue or pull request number", type=UNSUPPORTED, non_retryable=True
            )
        owner, name = _split(req.repo)
        tag = marker(req.run_id, req.step)
        what = f"issue #{req.issue_number} in {req.repo}"
        existing = await call(
            self._gh.rest.issues.async_list_comments(owner, name, req.issue_number, per_page=100), what
        )
        for comment in existing:  # a retry after a crash finds the comment it already posted
            if tag in str(comment.get("body") or ""):
                return PostedResult(location=str(comment.get("html_url") or comment["id"]))
        created = await call(
            self._gh.rest.issues.async_create_comment(owner, name, req.issue_number, body=f"{tag}\n{req.body}"), what
        )
        return PostedResult(location=str(created.get("html_url") or created["id"]))

    async def land_changes(self, req: LandChangesInput) -> LandChangesResult:
        raise _unsupported("committing")

    async def publish_change(self, req: PublishInput) -> PublishResult:
        raise _unsupported("opening pull requests")

    async def post_review(self, req: PostReviewInput) -> PostedResult:
        raise _unsupported("posting reviews")


def _unsupported(what: str) -> ApplicationError:
    return ApplicationError(
        f"the GitHub host does not support {what} yet (issue #4); use plan mode on GitHub, or a local clone",
        type=UNSUPPORTED,
        non_retryable=True,
    )
