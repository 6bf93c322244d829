"""The local code host: a git repository on this machine, given as an absolute path or file:// URL.

What GitHub's issues and pull requests become locally:

- Issue N is the file `.forgeflow/issues/<N>.md`, read from the base commit, else from the work
  tree. Its first line with text is the title; the whole file is the body.
- PR N is the branch named on the first line of `.forgeflow/prs/<N>` (found the same way); the
  rest of that file is its description. It is reviewed against the base commit.
- A landed change is the branch `forgeflow/...` itself. Publishing, reviews and comments are
  markdown records under `<git-common-dir>/forgeflow/`: `prs/<branch>.md`,
  `reviews/<branch>/round-<N>.md` (+ `latest.md`) and `comments/<issue-N|branch|run-id>.md`,
  where a branch's `/` becomes `__`.

Only plumbing is used, so the user's work tree, index, HEAD and current branch are never touched:
blobs are written with hash-object, trees are built in a temporary index, and the only refs moved
are `refs/heads/forgeflow/*`, by compare-and-swap.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from temporalio.exceptions import ApplicationError

from activities.blobstore import BlobNotFoundError, BlobStore
from activities.codehost import _change_rules as checks
from activities.codehost import _records as records
from activities.codehost._git import (
    OBJECT_ID,
    Blob,
    Repo,
    TreeEntry,
    fail,
    repo_directory,
    run_git,
)
from activities.codehost._reader import GitReader
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
from contracts.repo import RepoRef
from policy import host_rules as rules
from policy.paths import UnsafePathError, repo_path

IDENTITY = ("forgeflow", "forgeflow@localhost")


class LocalGitHost:
    """The CodeHost for local repositories (see the module docstring for the conventions)."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs
        self._reader = GitReader()  # the read tools' listings and objects, without a process per call

    # --- reads ------------------------------------------------------------------------------

    async def fetch_task(self, req: FetchTaskInput) -> TaskSpec:
        repo = await self._reader.repo(req.repo.path)
        base, base_branch = await _base(repo, req.base_ref, self._reader)
        pr = await _pull_request(repo, base, req.pr_number) if req.pr_number is not None else None
        title, body, source = await _describe(repo, base, req, pr, base_branch)
        return TaskSpec(
            title=title,
            body=body,
            source=source,
            base_sha=base,
            base_branch=base_branch,
            head_sha=pr.head_sha if pr else None,
            pr_ref=pr.branch if pr else None,
            head_branch=pr.branch if pr else None,
        )

    async def read_file(self, repo: RepoRef, sha: str, path: str) -> bytes | None:
        opened = await self._reader.repo(repo.path)
        try:
            clean = repo_path(path)
        except UnsafePathError:
            return None  # no such path can be in a tree
        data = await opened.blob(sha, clean)
        if data is None:
            await opened.commit(sha)  # a missing commit is an error, a missing file is not
        return data

    async def list_files(self, repo: RepoRef, sha: str) -> list[str]:
        return await self._reader.files(await repo_directory(repo.path), sha)

    async def tree_id(self, repo: RepoRef, sha: str) -> str:
        return await self._reader.tree_id(await repo_directory(repo.path), sha)

    async def tree(self, repo: RepoRef, sha: str) -> list[TreeEntry]:
        # No open_repo: git itself finds out whether the folder is a repository.
        return await self._reader.tree(await repo_directory(repo.path), sha)

    async def entries(self, repo: RepoRef, sha: str, paths: Sequence[str]) -> list[TreeEntry]:
        return await self._reader.entries(await repo_directory(repo.path), sha, paths)

    async def read_blobs(self, repo: RepoRef, object_ids: Sequence[str]) -> AsyncGenerator[Blob, None]:
        # Closed with this generator, so stopping early ends a git process of its own now.
        async with contextlib.aclosing(self._reader.read(await repo_directory(repo.path), object_ids)) as blobs:
            async for blob in blobs:
                yield blob

    async def diff(self, repo: RepoRef, base_sha: str, head_sha: str) -> str:
        opened = await self._reader.repo(repo.path)
        base, head = await opened.commit(base_sha), await opened.commit(head_sha)
        # Plain, stable output whatever the user's diff configuration says.
        flags = ("--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/")
        return await opened.git("diff", *flags, base, head, "--")

    # --- writes -----------------------------------------------------------------------------

    async def land_changes(self, req: LandChangesInput) -> LandChangesResult:
        checks.check_branch(req.branch)
        checks.check_overlay_paths(req.overlay)
        dates = _git_date(req.timestamp)
        repo = await self._reader.repo(req.repo.path)
        if not (await run_git(repo.path, "check-ref-format", f"refs/heads/{req.branch}")).ok:
            raise fail(f"branch {req.branch!r} is not a valid branch name", "BranchNotAllowed")
        parent = await repo.commit(req.parent_sha)
        found = await self._reader.entries(repo.path, parent, rules.with_parents(req.overlay))
        modes = {entry.path: entry.mode for entry in found}
        checks.check_links(req.overlay, modes, req.approved_link_changes)
        tree = await self._tree(repo, parent, req.overlay, modes)
        env = _identity_env(dates)
        message = req.message if req.message.endswith("\n") else req.message + "\n"
        commit = await repo.git("commit-tree", "--no-gpg-sign", tree, "-p", parent, stdin=message.encode(), env=env)
        await _move_branch(repo, req.branch, commit, req.expected_branch_sha, env)
        return LandChangesResult(commit_sha=commit, branch=req.branch, files_changed=sorted(req.overlay))

    async def publish_change(self, req: PublishInput) -> PublishResult:
        repo = await self._reader.repo(req.repo.path)
        if await repo.branch_sha(req.branch) is None:
            raise fail(f"repo {repo.path}: branch {req.branch} does not exist", "BranchNotFound")
        record = (
            f"# {req.title}\n\n- branch: `{req.branch}`\n- base: `{req.base_branch}`\n"
            f"- run: `{req.run_id}`\n\n{req.body.rstrip()}\n"
        )
        await asyncio.to_thread(
            records.write_atomic, _records(repo) / "prs" / f"{records.file_name(req.branch)}.md", record
        )
        return PublishResult(ref=req.branch)

    async def post_review(self, req: PostReviewInput) -> PostedResult:
        repo = await self._reader.repo(req.repo.path)
        folder = _records(repo) / "reviews" / records.file_name(req.pr_ref)
        report = records.review_markdown(req)
        target = folder / f"round-{req.round}.md"
        await asyncio.to_thread(records.write_atomic, target, report)
        await asyncio.to_thread(records.write_atomic, folder / "latest.md", report)
        return PostedResult(location=str(target))

    async def report_stage(self, req: ReportStageInput) -> PostedResult:
        """A local repository shows no checks: the run's stage is in its state and the Temporal UI."""
        return PostedResult(location="not reported: a local repository has no checks")

    async def post_comment(self, req: PostCommentInput) -> PostedResult:
        repo = await self._reader.repo(req.repo.path)
        if req.issue_number is not None:
            name = f"issue-{req.issue_number}"
        elif req.branch:
            name = records.file_name(req.branch)
        else:
            name = "run-" + records.file_name(req.run_id)
        target = _records(repo) / "comments" / f"{name}.md"
        await asyncio.to_thread(records.append_once, target, rules.marker(req.run_id, req.step), req.body)
        return PostedResult(location=str(target))

    async def _tree(self, repo: Repo, parent: str, overlay: dict[str, str | None], modes: Mapping[str, str]) -> str:
        """The tree of `parent` with `overlay` applied, built in a throwaway index."""
        zero = "0" * len(parent)
        entries = []
        for path in sorted(overlay):
            key = overlay[path]
            if key is None:
                entries.append(f"0 {zero}\t{path}\0")  # mode 0: remove
                continue
            blob = await repo.git("hash-object", "-w", "--stdin", stdin=await self._content(key))
            entries.append(f"{rules.written_mode(path, modes)} {blob}\t{path}\0")
        with tempfile.TemporaryDirectory(prefix="forgeflow-index-") as tmp:
            env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
            await repo.git("read-tree", parent, env=env)
            await repo.git("update-index", "-z", "--index-info", stdin="".join(entries).encode(), env=env)
            return await repo.git("write-tree", env=env)

    async def _content(self, key: str) -> bytes:
        try:
            return await self._blobs.get_async(key)
        except BlobNotFoundError as err:  # retryable: another worker may share the store
            raise ApplicationError(str(err), type="BlobNotFound") from err
        except ValueError as err:
            raise fail(f"overlay value {key!r} is not a blob key", "BadBlobKey") from err


# --- fetch_task helpers ---------------------------------------------------------------------


@dataclass(frozen=True)
class _PullRequest:
    number: int
    branch: str
    head_sha: str
    description: str

    def describe(self, base_branch: str) -> str:
        text = f"Review the changes on branch `{self.branch}` ({self.head_sha}) against `{base_branch}`."
        return f"{text}\n\n{self.description}" if self.description else text


async def _describe(
    repo: Repo, base: str, req: FetchTaskInput, pr: _PullRequest | None, base_branch: str
) -> tuple[str, str, str]:
    """(title, body, source) of the task, from the source the shared precedence picks."""
    match source := checks.task_source(req):
        case rules.FromSpec(text):
            return rules.task_title(text, "Spec"), text, source.label
        case rules.FromIssue(number):
            rel = f".forgeflow/issues/{number}.md"
            found = await _task_file(repo, base, rel)
            if found is None:
                raise fail(f"repo {repo.path}: issue file {rel} not found", "TaskNotFound")
            return rules.task_title(found, f"Issue #{number}"), found, source.label
        case rules.FromPullRequest():
            assert pr is not None, "fetch_task loads the pull request whenever there is a pr_number"
            return f"PR #{pr.number}: {pr.branch}", pr.describe(base_branch), source.label


async def _pull_request(repo: Repo, base: str, number: int) -> _PullRequest:
    rel = f".forgeflow/prs/{number}"
    text = await _task_file(repo, base, rel)
    lines = (text or "").strip().splitlines()
    if not lines:
        raise fail(f"repo {repo.path}: PR #{number} needs the file {rel} naming its branch", "TaskNotFound")
    branch = lines[0].strip().removeprefix("refs/heads/")
    head = await repo.branch_sha(branch)
    if head is None:
        raise fail(f"repo {repo.path}: PR #{number}: branch {branch!r} (from {rel}) has no commit", "RefNotFound")
    return _PullRequest(number, branch, head, "\n".join(lines[1:]).strip())


async def _base(repo: Repo, base_ref: str | None, reader: GitReader) -> tuple[str, str]:
    """The commit a run starts from, and the branch it is on ("HEAD" when none). HEAD's, the common
    case, starts no process: its file names the branch, and the reader's shared `git cat-file` says
    which commit that is (issue 14: every local run asks, and a process started by a busy worker holds
    the whole worker up while git starts, 4 ms a run at 100 runs). Where the file does not say plainly
    (a reftable repository, a symbolic link, no commit yet) git's rev-parse decides."""
    if base_ref:
        return await repo.commit(base_ref), await _base_branch(repo, base_ref)
    head = _head(repo)
    if head is not None:
        ref, branch = head
        sha = await reader.commit_id(repo.path, f"{ref}^{{commit}}")
        if sha is not None:
            return sha, branch
    found = await run_git(repo.path, "rev-parse", "HEAD^{commit}", "--symbolic-full-name", "HEAD")
    lines = found.text.splitlines() if found.ok else []
    if len(lines) != 2:
        raise fail(f"repo {repo.path}: no commit for ref 'HEAD'", "RefNotFound")
    sha, name = lines
    return sha, name.removeprefix("refs/heads/") if name.startswith("refs/heads/") else "HEAD"


def _head(repo: Repo) -> tuple[str, str] | None:
    """(what to resolve, the branch) as HEAD's file says it: a branch's ref, or a commit id when HEAD is
    detached; None when it says neither plainly. A file of a few bytes, read in place."""
    try:
        if repo.head_file.is_symlink():
            return None
        text = repo.head_file.read_text("utf-8", "replace").strip()
    except OSError:
        return None
    if text.startswith("ref: refs/heads/") and len(text.split()) == 2:
        ref = text.removeprefix("ref: ")
        return ref, ref.removeprefix("refs/heads/")
    if OBJECT_ID.fullmatch(text):
        return text, "HEAD"
    return None


async def _base_branch(repo: Repo, base_ref: str | None) -> str:
    if base_ref:
        named = await run_git(repo.path, "rev-parse", "--verify", "--quiet", "--symbolic-full-name", base_ref)
        if named.ok and named.text.startswith("refs/heads/"):
            return named.text.removeprefix("refs/heads/")
    current = await run_git(repo.path, "symbolic-ref", "--quiet", "--short", "HEAD")
    return current.text if current.ok and current.text else "HEAD"


async def _task_file(repo: Repo, base: str, rel: str) -> str | None:
    """A task file from the base commit, else from the work tree."""
    data = await repo.blob(base, rel)
    if data is None and not repo.bare:
        data = await asyncio.to_thread(_read_or_none, Path(repo.path, rel))
    return None if data is None else data.decode("utf-8", "replace")


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


# --- land_changes helpers -------------------------------------------------------------------


def _git_date(timestamp: str) -> str:
    """ISO time → git's `@<epoch> <±hhmm>`, so the same input always makes the same commit."""
    try:
        when = datetime.fromisoformat(timestamp)
    except ValueError as err:
        raise fail(f"timestamp {timestamp!r} is not an ISO 8601 time", "BadTimestamp") from err
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    offset = when.utcoffset()
    minutes = int(offset.total_seconds()) // 60 if offset else 0
    sign = "-" if minutes < 0 else "+"
    return f"@{int(when.timestamp())} {sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def _identity_env(date: str) -> dict[str, str]:
    name, email = IDENTITY
    env: dict[str, str] = {}
    for who in ("AUTHOR", "COMMITTER"):
        env |= {f"GIT_{who}_NAME": name, f"GIT_{who}_EMAIL": email, f"GIT_{who}_DATE": date}
    return env


async def _move_branch(repo: Repo, branch: str, new: str, expected: str | None, env: dict[str, str]) -> None:
    """Compare-and-swap refs/heads/<branch> from `expected` (None: absent) to `new`."""
    current = await repo.branch_sha(branch)
    if current == new:
        return  # a retry after the first attempt landed: same input, same commit
    if current != expected:
        raise _moved(repo, branch, expected, current)
    ref, old = f"refs/heads/{branch}", expected or "0" * len(new)
    moved = await run_git(repo.path, "update-ref", "-m", f"forgeflow: land {new}", ref, new, old, env=env)
    if moved.ok:
        return
    current = await repo.branch_sha(branch)
    if current == new:
        return
    if current != expected:
        raise _moved(repo, branch, expected, current)
    raise ApplicationError(f"repo {repo.path}: could not move {ref}: {moved.stderr.strip()}", type="GitError")


def _moved(repo: Repo, branch: str, expected: str | None, actual: str | None) -> ApplicationError:
    want = expected or "no branch (it should not exist yet)"
    return fail(f"repo {repo.path}: branch {branch} moved: expected {want}, found {actual}", "BranchMoved")


# --- records --------------------------------------------------------------------------------


def _records(repo: Repo) -> Path:
    return repo.git_dir / "forgeflow"
