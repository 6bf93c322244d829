"""The GitHub code host through githubkit (its own retries off: Temporal owns them).

Reads the repository, default branch, issue with its comments, and the code at a commit (one
archive download per commit, cached on the worker). Writes are idempotent under retries: one
commit per round through the Git Data API with a compare-and-swap on the branch, the pull request
found before one is created, comments and reviews carrying a hidden marker per run and step.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from githubkit import GitHub, Response
from githubkit.exception import RequestFailed
from temporalio.exceptions import ApplicationError

from activities.blobstore import BlobStore
from activities.codehost import _change_rules as checks
from activities.codehost._commit_cache import CommitCache
from activities.codehost._git import Blob, TreeEntry, run_git
from activities.codehost._reader import GitReader, contents, named
from contracts.codehost import (
    FetchTaskInput,
    LandChangesInput,
    LandChangesResult,
    PostCommentInput,
    PostedResult,
    PostReviewInput,
    PublishInput,
    PublishResult,
    ReportStageInput,
    TaskSpec,
)
from contracts.github_events import WRITE_PERMISSIONS, Reaction
from contracts.repo import RepoRef
from contracts.run import HumanReviewComment
from policy import checks as checks_policy
from policy import host_rules as rules
from policy.host_rules import mapping_ref
from policy.paths import UnsafePathError, repo_path
from policy.retry import classify_github
from policy.untrusted import bound


def to_error(err: RequestFailed, what: str) -> ApplicationError:
    """A failed API call as Temporal should treat it, saying what was missing."""
    status, headers = err.response.status_code, dict(err.response.headers)
    decision = classify_github(status, headers)
    delay = timedelta(seconds=decision.delay_seconds) if decision.delay_seconds is not None else None
    why = {404: f"{what} not found, or the token cannot see it", 401: "the GitHub token was refused"}.get(status)
    kind = "GitHubNotFound" if status == 404 else "GitHubRequestFailed"
    return ApplicationError(
        f"{decision.reason} ({why or what})", type=kind, non_retryable=not decision.retryable, next_retry_delay=delay
    )


async def call(request: Awaitable[Response[Any]], what: str) -> Any:
    """The JSON of one API call; failures become typed ApplicationErrors."""
    try:
        return (await request).json()
    except RequestFailed as err:
        raise to_error(err, what) from None


class GitHubHost:
    def __init__(self, github: GitHub[Any], cache: CommitCache, blobs: BlobStore, *, as_app: bool = False) -> None:
        """`as_app`: the client acts as a GitHub App installation, which alone may write check runs."""
        self._gh = github
        self._as_app = as_app
        self._cache = cache
        self._blobs = blobs
        self._reader = GitReader()  # the read tools' listings and objects, without a process per call

    async def fetch_task(self, req: FetchTaskInput) -> TaskSpec:
        source = checks.task_source(req)
        owner, name = req.repo.owner, req.repo.name
        info = await call(self._gh.rest.repos.async_get(owner, name), f"repository {req.repo}")
        if req.pr_number is not None:
            return await self._pull_request_task(req, source)
        base_branch = req.base_ref or str(info["default_branch"])
        commit = await call(self._gh.rest.repos.async_get_commit(owner, name, base_branch), f"{req.repo}@{base_branch}")
        base_sha = str(commit["sha"])
        await self._local(req.repo, base_sha)
        title, body = await self._task_text(req, source, None)
        return TaskSpec(
            title=title,
            body=body,
            source=source.label,
            base_sha=base_sha,
            base_branch=base_branch,
        )

    async def _pull_request_task(self, req: FetchTaskInput, source: rules.TaskSource) -> TaskSpec:
        """Review mode: the pull request's base and head, both in the worker's cache."""
        assert req.pr_number is not None
        owner, name = req.repo.owner, req.repo.name
        what = f"pull request #{req.pr_number} in {req.repo}"
        pull = await call(self._gh.rest.pulls.async_get(owner, name, req.pr_number), what)
        base_sha, head_sha = str(pull["base"]["sha"]), str(pull["head"]["sha"])
        await self._local(req.repo, base_sha)
        await self._local(req.repo, head_sha)
        title, body = await self._task_text(req, source, pull)
        return TaskSpec(
            title=title,
            body=body,
            source=source.label,
            base_sha=base_sha,
            base_branch=str(pull["base"]["ref"]),
            head_sha=head_sha,
            pr_ref=str(pull["html_url"]),
            head_branch=str(pull["head"]["ref"]),
        )

    async def _task_text(
        self, req: FetchTaskInput, source: rules.TaskSource, pull: Mapping[str, Any] | None
    ) -> tuple[str, str]:
        """(title, body) from the source the shared precedence picked; `pull` is the PR under review, if any."""
        match source:
            case rules.FromSpec(text):
                return rules.task_title(text, "Spec"), text
            case rules.FromPullRequest():
                assert pull is not None, "fetch_task reads the pull request whenever there is a pr_number"
                return str(pull["title"]), str(pull.get("body") or "")
            case rules.FromIssue(number):
                owner, name = req.repo.owner, req.repo.name
                what = f"issue #{number} in {req.repo}"
                issue = await call(self._gh.rest.issues.async_get(owner, name, number), what)
                if not req.trust_any_author:
                    await self._check_author(req.repo, str(issue["user"]["login"]), number)
                comments = await call(self._gh.rest.issues.async_list_comments(owner, name, number), what)
                thread = [(str(c["user"]["login"]), str(c["body"])) for c in comments]
                labels = [str(item["name"] if isinstance(item, dict) else item) for item in issue.get("labels") or []]
                return str(issue["title"]), rules.issue_body(str(issue.get("body") or ""), labels, thread)

    async def _check_author(self, repo: RepoRef, login: str, number: int) -> None:
        """Issue text steers the agents: act only on issues from people who could push the change themselves."""
        permission = await self.permission(repo, login)
        if permission not in WRITE_PERMISSIONS:
            raise ApplicationError(
                f"issue #{number} in {repo} was opened by @{login}, who has {permission} access; "
                "forgeflow acts on issues from users with write access (set trust_any_author to override)",
                type="IssueAuthorNotTrusted",
                non_retryable=True,
            )

    async def permission(self, repo: RepoRef, login: str) -> str:
        """GitHub's word for `login`'s access to `repo`: admin, maintain, write, triage, read or none."""
        request = self._gh.rest.repos.async_get_collaborator_permission_level(repo.owner, repo.name, login)
        try:
            found = (await request).json()
        except RequestFailed as err:
            if err.response.status_code == 404:  # not a collaborator: no access of their own
                return "none"
            raise to_error(err, f"@{login}'s access to {repo}") from None
        return str(found.get("permission") or "none")

    async def react(self, repo: RepoRef, comment_id: int, content: Reaction) -> None:
        """A reaction to an issue or pull request comment; GitHub keeps one per user and content, so a
        retry adds nothing."""
        request = self._gh.rest.reactions.async_create_for_issue_comment(
            repo.owner, repo.name, comment_id, content=content
        )
        await call(request, f"comment {comment_id} in {repo}")

    async def review_comments(self, repo: RepoRef, pr_number: int, review_id: int) -> list[HumanReviewComment]:
        """The line comments of one review of a pull request (path, line, body)."""
        request = self._gh.rest.pulls.async_list_comments_for_review(
            repo.owner, repo.name, pr_number, review_id, per_page=100
        )
        found = await call(request, f"review {review_id} of pull request #{pr_number} in {repo}")
        return [
            HumanReviewComment(
                path=str(c["path"]), line=c.get("line") or c.get("original_line"), body=bound(str(c.get("body") or ""))
            )
            for c in found
        ]

    def _cached(self, repo: RepoRef) -> Path:
        """The worker's bare repository holding the commits of `repo` downloaded so far."""
        return self._cache.path(repo.location)

    async def _local(self, repo: RepoRef, sha: str) -> str:
        owner, name = repo.owner, repo.name

        async def archive() -> bytes:
            response = await self._gh.rest.repos.async_download_tarball_archive(owner, name, sha)
            return response.content

        try:
            return await self._cache.local(repo.location, sha, archive)
        except RequestFailed as err:
            raise ApplicationError(f"github: archive of {repo}@{sha} failed: HTTP {err.response.status_code}") from None

    async def read_file(self, repo: RepoRef, sha: str, path: str) -> bytes | None:
        try:
            clean = repo_path(path)
        except UnsafePathError:
            return None  # no such path can be in a tree
        local = await self._local(repo, sha)
        result = await run_git(str(self._cached(repo)), "cat-file", "blob", f"{local}:{clean}")
        return result.stdout if result.ok else None

    async def list_files(self, repo: RepoRef, sha: str) -> list[str]:
        return [entry.path for entry in await self.tree(repo, sha)]

    async def tree_id(self, repo: RepoRef, sha: str) -> str:
        return await self._reader.tree_id(str(self._cached(repo)), await self._local(repo, sha))

    async def tree(self, repo: RepoRef, sha: str) -> list[TreeEntry]:
        return contents(await self._listing(repo, sha))

    async def entries(self, repo: RepoRef, sha: str, paths: Sequence[str]) -> list[TreeEntry]:
        return named(await self._listing(repo, sha), paths)

    async def read_blobs(self, repo: RepoRef, object_ids: Sequence[str]) -> AsyncGenerator[Blob, None]:
        path = self._cached(repo)
        if not path.is_dir():  # nothing cached yet, so no object listed by tree() either
            for oid in object_ids:
                yield Blob(oid, None)
            return
        # Closed with this generator, so stopping early ends a git process of its own now.
        async with contextlib.aclosing(self._reader.read(str(path), object_ids)) as blobs:
            async for blob in blobs:
                yield blob

    async def _listing(self, repo: RepoRef, sha: str) -> dict[str, TreeEntry]:
        """Every entry of the commit by path, from the worker's cache (listed once per commit, then kept
        in memory), downloading the commit first when it is not cached."""
        cache = self._cached(repo)
        if cache.is_dir():
            try:
                return await self._reader.listing(str(cache), mapping_ref(sha))
            except ApplicationError as err:
                if err.type != "RefNotFound":
                    raise
        return await self._reader.listing(str(cache), await self._local(repo, sha))

    async def diff(self, repo: RepoRef, base_sha: str, head_sha: str) -> str:
        base, head = await self._local(repo, base_sha), await self._local(repo, head_sha)
        # Plain, stable output whatever the worker's git configuration says.
        flags = ("--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/")
        return (await run_git(str(self._cached(repo)), "diff", *flags, base, head, "--")).text

    async def post_comment(self, req: PostCommentInput) -> PostedResult:
        """On the issue; for a run from a spec, on its pull request; with neither, nowhere (said so)."""
        owner, name = req.repo.owner, req.repo.name
        number = req.issue_number or await self._open_pull_number(owner, name, req.branch)
        if number is None:
            return PostedResult(location="not posted: the run has no issue or pull request yet")
        tag = rules.marker(req.run_id, req.step)
        what = f"issue #{number} in {req.repo}"
        existing = await call(self._gh.rest.issues.async_list_comments(owner, name, number, per_page=100), what)
        for comment in existing:  # a retry after a crash finds the comment it already posted
            if rules.carries(str(comment.get("body") or ""), tag):
                return PostedResult(location=str(comment.get("html_url") or comment["id"]))
        created = await call(
            self._gh.rest.issues.async_create_comment(owner, name, number, body=rules.stamped(tag, req.body)), what
        )
        return PostedResult(location=str(created.get("html_url") or created["id"]))

    async def _open_pull_number(self, owner: str, name: str, branch: str | None) -> int | None:
        if branch is None:
            return None
        found = await call(self._gh.rest.pulls.async_list(owner, name, head=f"{owner}:{branch}", state="open"), branch)
        return int(found[0]["number"]) if found else None

    async def land_changes(self, req: LandChangesInput) -> LandChangesResult:
        """One commit through the Git Data API (blobs → tree → commit → ref), safe to retry."""
        checks.check_branch(req.branch)
        checks.check_overlay_paths(req.overlay)
        owner, name = req.repo.owner, req.repo.name
        parent = await call(self._gh.rest.git.async_get_commit(owner, name, req.parent_sha), f"commit {req.parent_sha}")
        modes = await self._modes(owner, name, str(parent["tree"]["sha"]), list(req.overlay))
        checks.check_links(req.overlay, modes, req.approved_link_changes)
        entries = await self._entries(req, modes)
        tree_request = self._gh.rest.git.async_create_tree(owner, name, base_tree=parent["tree"]["sha"], tree=entries)
        tree = str((await call(tree_request, f"a tree in {req.repo}"))["sha"])
        current = await self._branch_head(owner, name, req.branch)
        if current != req.expected_branch_sha:
            if current is not None and await self._is_ours(owner, name, current, tree, req.parent_sha):
                await self._local(req.repo, current)  # as below: this worker may not have it cached yet
                return self._landed(req, current)  # the ref moved before a crash: already done
            raise ApplicationError(
                f"branch {req.branch} moved: expected {req.expected_branch_sha}, found {current}",
                type="BranchMoved",
                non_retryable=True,
            )
        commit_request = self._gh.rest.git.async_create_commit(
            owner, name, message=req.message, tree=tree, parents=[req.parent_sha]
        )
        commit = str((await call(commit_request, f"a commit in {req.repo}"))["sha"])
        if current is None:
            await call(
                self._gh.rest.git.async_create_ref(owner, name, ref=f"refs/heads/{req.branch}", sha=commit), req.branch
            )
        else:
            ref_update = self._gh.rest.git.async_update_ref(owner, name, f"heads/{req.branch}", sha=commit, force=False)
            await call(ref_update, req.branch)
        await self._local(req.repo, commit)  # later reads (and the tree's upload for the sandbox) use the cache
        return self._landed(req, commit)

    @staticmethod
    def _landed(req: LandChangesInput, commit: str) -> LandChangesResult:
        return LandChangesResult(commit_sha=commit, branch=req.branch, files_changed=sorted(req.overlay))

    async def _entries(self, req: LandChangesInput, modes: Mapping[str, str]) -> list[Any]:
        """Tree entries as the Git Data API takes them (githubkit's TypedDict, built as plain dicts)."""
        owner, name = req.repo.owner, req.repo.name
        entries: list[dict[str, Any]] = []
        for path, key in sorted(req.overlay.items()):
            mode = rules.written_mode(path, modes)
            if key is None:
                entries.append({"path": path, "mode": mode, "type": "blob", "sha": None})
                continue
            content = base64.b64encode(await self._blobs.get_async(key)).decode()
            blob = await call(
                self._gh.rest.git.async_create_blob(owner, name, content=content, encoding="base64"), path
            )
            entries.append({"path": path, "mode": mode, "type": "blob", "sha": blob["sha"]})
        return entries

    async def _modes(self, owner: str, name: str, root_tree: str, paths: list[str]) -> dict[str, str]:
        """Git modes on GitHub itself of `paths` and the directories above them, in the parent commit.

        Read from the API, not the worker's cache: the cache is built from an archive, which leaves out
        files marked export-ignore. One non-recursive listing per directory on the way, outermost first."""
        wanted = set(rules.with_parents(paths))
        trees: dict[str, str] = {"": root_tree}
        modes: dict[str, str] = {}
        for directory in sorted({path.rpartition("/")[0] for path in wanted}, key=_depth):
            tree = trees.get(directory)
            if tree is None:  # not a directory in the parent commit: absent, a file or a link
                continue
            what = f"tree {directory or '/'} in {owner}/{name}"
            listing = await call(self._gh.rest.git.async_get_tree(owner, name, tree), what)
            if listing.get("truncated"):  # a missing entry could be a link: refuse rather than guess
                raise ApplicationError(f"{what} is too large to list", type="GitHubTreeTruncated", non_retryable=True)
            for entry in listing["tree"]:
                path = f"{directory}/{entry['path']}" if directory else str(entry["path"])
                if path in wanted:
                    modes[path] = str(entry["mode"])
                    if entry["type"] == "tree":
                        trees[path] = str(entry["sha"])
        return modes

    async def _branch_head(self, owner: str, name: str, branch: str) -> str | None:
        try:
            response = await self._gh.rest.git.async_get_ref(owner, name, f"heads/{branch}")
        except RequestFailed as err:
            if err.response.status_code == 404:
                return None
            raise to_error(err, f"branch {branch}") from None
        ref: dict[str, Any] = cast(dict[str, Any], response.json())  # the wire key is "object"
        return str(ref["object"]["sha"])

    async def _is_ours(self, owner: str, name: str, sha: str, tree: str, parent: str) -> bool:
        head = await call(self._gh.rest.git.async_get_commit(owner, name, sha), f"commit {sha}")
        return bool(head["tree"]["sha"] == tree and [p["sha"] for p in head["parents"]] == [parent])

    async def publish_change(self, req: PublishInput) -> PublishResult:
        """Find the open pull request for the branch (a retried create must not open a second) or open a draft."""
        owner, name = req.repo.owner, req.repo.name
        what = f"pull requests of {req.repo}"
        found = await call(
            self._gh.rest.pulls.async_list(owner, name, head=f"{owner}:{req.branch}", state="open"), what
        )
        if found:
            number = int(found[0]["number"])
            await call(self._gh.rest.pulls.async_update(owner, name, number, title=req.title, body=req.body), what)
            return PublishResult(ref=str(found[0]["html_url"]))
        create = self._gh.rest.pulls.async_create(
            owner, name, title=req.title, head=req.branch, base=req.base_branch, body=req.body, draft=req.draft
        )
        return PublishResult(ref=str((await call(create, what))["html_url"]))

    async def post_review(self, req: PostReviewInput) -> PostedResult:
        """The verdict as one review with line comments, posted once per run and round."""
        owner, name = req.repo.owner, req.repo.name
        number = _pull_number(req.pr_ref)
        tag = rules.review_marker(req.run_id, req.round)
        what = f"pull request #{number} in {req.repo}"
        for review in await call(self._gh.rest.pulls.async_list_reviews(owner, name, number), what):
            if rules.carries(str(review.get("body") or ""), tag):
                return PostedResult(location=str(review.get("html_url") or review["id"]))
        body = rules.stamped(tag, f"**{req.review.verdict.replace('_', ' ')}** — {req.review.summary}")
        comments = [
            {"path": c.path, "line": c.line, "side": "RIGHT", "body": f"{rules.comment_tag(c)} {c.body}"}
            for c in req.review.comments
            if c.line is not None
        ]
        # A bot may not approve its own pull request: the verdict is in the body, the event a comment.
        try:
            response = await self._gh.rest.pulls.async_create_review(
                owner, name, number, commit_id=req.commit_sha, body=body, event="COMMENT", comments=comments
            )
            posted = response.json()
        except RequestFailed as err:
            if err.response.status_code != 422 or not comments:
                raise to_error(err, what) from None
            inline = "".join(f"\n- `{c['path']}:{c['line']}` {c['body']}" for c in comments)  # lines outside the diff
            retry = self._gh.rest.pulls.async_create_review(
                owner, name, number, commit_id=req.commit_sha, body=body + inline, event="COMMENT"
            )
            posted = await call(retry, what)
        return PostedResult(location=str(posted.get("html_url") or posted["id"]))

    async def report_stage(self, req: ReportStageInput) -> PostedResult:
        """The run's stage on `head_sha`: its check run created or updated in place (an App), else a
        commit status, posted only when it differs from the run's latest one there."""
        if self._as_app:
            return await self._check_run(req)
        return await self._commit_status(req)

    async def _check_run(self, req: ReportStageInput) -> PostedResult:
        owner, name = req.repo.owner, req.repo.name
        what = f"check runs of {req.head_sha[:12]} in {req.repo}"
        listed = await call(
            self._gh.rest.checks.async_list_for_ref(
                owner, name, req.head_sha, check_name=checks_policy.CHECK_NAME, filter_="all", per_page=100
            ),
            what,
        )
        found = [run for run in listed.get("check_runs") or [] if run.get("external_id") == req.run_id]
        fields: dict[str, Any] = {
            "status": req.status,
            "output": {"title": req.summary[:100], "summary": req.summary},
            **({"details_url": req.details_url} if req.details_url else {}),
            **({"conclusion": req.conclusion} if req.status == "completed" and req.conclusion else {}),
        }
        if found:
            number = int(found[0]["id"])
            await call(self._gh.rest.checks.async_update(owner, name, number, data=cast(Any, fields)), what)
            return PostedResult(location=str(found[0].get("html_url") or number))
        body = {"name": checks_policy.CHECK_NAME, "head_sha": req.head_sha, "external_id": req.run_id, **fields}
        created = await call(self._gh.rest.checks.async_create(owner, name, data=cast(Any, body)), what)
        return PostedResult(location=str(created.get("html_url") or created["id"]))

    async def _commit_status(self, req: ReportStageInput) -> PostedResult:
        owner, name = req.repo.owner, req.repo.name
        what = f"statuses of {req.head_sha[:12]} in {req.repo}"
        state = checks_policy.status_state(req.status, req.conclusion)
        text = checks_policy.description(req.summary)
        listed = await call(self._gh.rest.repos.async_list_commit_statuses_for_ref(owner, name, req.head_sha), what)
        ours = [s for s in listed if s.get("context") == checks_policy.CONTEXT]  # newest first
        if ours and (ours[0].get("state"), ours[0].get("description")) == (state, text):
            return PostedResult(location=str(ours[0].get("url") or ours[0].get("id")))  # a retry: already there
        posted = await call(
            self._gh.rest.repos.async_create_commit_status(
                owner,
                name,
                req.head_sha,
                state=state,
                description=text,
                context=checks_policy.CONTEXT,
                target_url=req.details_url,
            ),
            what,
        )
        return PostedResult(location=str(posted.get("url") or posted.get("id")))


def _depth(directory: str) -> tuple[int, str]:
    """Sort key: the root first, then each directory after the one holding it."""
    return (directory.count("/") + 1 if directory else 0, directory)


def _pull_number(ref: str) -> int:
    tail = ref.rstrip("/").rsplit("/", 1)[-1]
    if not tail.isdigit():
        raise ApplicationError(f"{ref!r} is not a pull request URL", type="InvalidInput", non_retryable=True)
    return int(tail)
