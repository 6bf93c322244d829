"""LocalGitHost against real git repositories in tmp_path: no mocks."""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.blobstore import BlobStore
from activities.codehost._git import Repo
from activities.codehost.local import LocalGitHost, _head
from contracts.agents import Review, ReviewComment
from contracts.codehost import (
    FetchTaskInput,
    LandChangesInput,
    PostCommentInput,
    PostReviewInput,
    PublishInput,
)
from contracts.repo import parse_repo
from testkit.tools import git
from tests.blobs import local_blobs

WHEN = "2025-01-02T03:04:05.678901+00:00"


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return local_blobs(tmp_path / "blobs")


@pytest.fixture
def host(blobs: BlobStore) -> LocalGitHost:
    return LocalGitHost(blobs)


def land(repo: Path, blobs: BlobStore, **changes: object) -> LandChangesInput:
    """A LandChangesInput on HEAD that modifies, adds in a subdirectory and deletes a file."""
    fields: dict[str, object] = {
        "repo": str(repo),
        "branch": "forgeflow/run-1",
        "parent_sha": git(repo, "rev-parse", "HEAD"),
        "overlay": {
            "calc/__init__.py": blobs.put(b"def add(a, b):\n    return b + a\n"),
            "calc/more/sub.py": blobs.put(b"def sub(a, b):\n    return a - b\n"),
            "tests/test_calc.py": None,
        },
        "message": "Rework calc\n\nforgeflow run run-1",
        "timestamp": WHEN,
    }
    return LandChangesInput.model_validate({**fields, **changes})


async def expect_failure(call: Awaitable[object], type_: str, *needles: str) -> ApplicationError:
    """Await `call`, expecting a non-retryable ApplicationError of `type_` whose message has `needles`."""
    with pytest.raises(ApplicationError) as caught:
        await call
    err = caught.value
    assert err.non_retryable, err
    assert err.type == type_, err
    for needle in needles:
        assert needle in err.message, err.message
    return err


# --- fetch_task -----------------------------------------------------------------------------


async def test_fetch_task_from_spec(host: LocalGitHost, sample_repo: Path) -> None:
    spec = "\n## Add subtract\n\nWrite `sub(a, b)` in calc.\n"
    task = await host.fetch_task(FetchTaskInput(repo=f"file://{sample_repo}", spec_content=spec))
    assert task.title == "Add subtract"
    assert task.body == spec
    assert task.source == "spec"
    assert task.base_sha == git(sample_repo, "rev-parse", "HEAD")
    assert task.base_branch == "main"
    assert task.head_sha is None
    tree = await host.tree_id(parse_repo(str(sample_repo)), task.base_sha)
    assert tree == git(sample_repo, "rev-parse", "HEAD^{tree}")


async def test_fetch_task_from_a_detached_head_or_an_empty_repository(
    host: LocalGitHost, sample_repo: Path, tmp_path: Path
) -> None:
    """HEAD's commit and branch come from one git call: a detached HEAD is on no branch ("HEAD"), and a
    repository without a commit has nothing to start from."""
    git(sample_repo, "checkout", "-q", "--detach")
    task = await host.fetch_task(FetchTaskInput(repo=str(sample_repo), spec_content="x"))
    assert (task.base_sha, task.base_branch) == (git(sample_repo, "rev-parse", "HEAD"), "HEAD")
    empty = tmp_path / "empty"
    git(tmp_path, "init", "-q", str(empty))
    await expect_failure(
        host.fetch_task(FetchTaskInput(repo=str(empty), spec_content="x")), "RefNotFound", "no commit for ref 'HEAD'"
    )


async def test_fetch_task_follows_head_without_starting_a_process(
    host: LocalGitHost, sample_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HEAD's file names the branch, the reader's shared git cat-file says where it is now."""
    first = await host.fetch_task(FetchTaskInput(repo=str(sample_repo), spec_content="x"))
    (sample_repo / "new.txt").write_text("new\n")
    git(sample_repo, "add", "new.txt")
    git(sample_repo, "commit", "-qm", "moves main")
    tip = git(sample_repo, "rev-parse", "HEAD")
    git(sample_repo, "worktree", "add", "-q", "-b", "side", str(tmp_path / "side"), first.base_sha)
    git(sample_repo, "pack-refs", "--all")
    monkeypatch.setenv("PATH", "/nonexistent")  # no new git process from here on
    moved = await host.fetch_task(FetchTaskInput(repo=str(sample_repo), spec_content="x"))
    assert (moved.base_sha, moved.base_branch) == (tip, "main") != (first.base_sha, "main")
    with pytest.raises(FileNotFoundError):  # a worktree is a folder of its own: opened by git once
        await host.fetch_task(FetchTaskInput(repo=str(tmp_path / "side"), spec_content="x"))
    monkeypatch.undo()
    side = await host.fetch_task(FetchTaskInput(repo=str(tmp_path / "side"), spec_content="x"))
    assert (side.base_sha, side.base_branch) == (first.base_sha, "side")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("ref: refs/heads/main\n", ("refs/heads/main", "main")),
        ("ref: refs/heads/feature/x\n", ("refs/heads/feature/x", "feature/x")),
        ("a" * 40 + "\n", ("a" * 40, "HEAD")),  # detached
        ("b" * 64 + "\n", ("b" * 64, "HEAD")),  # detached, SHA-256
        ("ref: refs/remotes/origin/main\n", None),  # not a branch: git decides
        ("ref: refs/heads/main extra\n", None),
        ("A" * 40 + "\n", None),
        ("", None),
        (None, None),  # no file
        ("->link", None),  # a symbolic link (old git's HEAD): git decides
    ],
)
def test_heads_file_says_the_branch_or_the_commit_or_nothing(
    tmp_path: Path, content: str | None, expected: tuple[str, str] | None
) -> None:
    head = tmp_path / "HEAD"
    if content == "->link":
        (tmp_path / "target").write_text("ref: refs/heads/main\n")
        head.symlink_to(tmp_path / "target")
    elif content is not None:
        head.write_text(content)
    assert _head(Repo(path=str(tmp_path), git_dir=tmp_path, bare=True, head_file=head)) == expected


async def test_fetch_task_title_is_bounded(host: LocalGitHost, sample_repo: Path) -> None:
    task = await host.fetch_task(FetchTaskInput(repo=str(sample_repo), spec_content="# " + "x" * 300))
    assert task.title == "x" * 120


async def test_fetch_task_from_committed_issue_file(host: LocalGitHost, sample_repo: Path) -> None:
    issue = sample_repo / ".forgeflow" / "issues" / "12.md"
    issue.parent.mkdir(parents=True)
    issue.write_text("# Subtraction is missing\n\ncalc has add but no sub.\n")
    git(sample_repo, "add", "-A")
    git(sample_repo, "commit", "-qm", "issue 12")
    issue.unlink()  # read from the base commit, not the work tree
    task = await host.fetch_task(FetchTaskInput(repo=str(sample_repo), issue_number=12))
    assert task.title == "Subtraction is missing"
    assert "calc has add but no sub." in task.body
    assert task.source == "issue #12"


async def test_fetch_task_spec_given_with_an_issue_wins(host: LocalGitHost, sample_repo: Path) -> None:
    issue = sample_repo / ".forgeflow" / "issues" / "12.md"
    issue.parent.mkdir(parents=True)
    issue.write_text("# Subtraction is missing\n")
    spec = "# Add subtract, as the spec says\n"
    task = await host.fetch_task(FetchTaskInput(repo=str(sample_repo), issue_number=12, spec_content=spec))
    assert (task.title, task.body, task.source) == ("Add subtract, as the spec says", spec, "spec")
    # A blank spec is no spec: the issue is the task.
    blank = await host.fetch_task(FetchTaskInput(repo=str(sample_repo), issue_number=12, spec_content=" \n"))
    assert (blank.title, blank.source) == ("Subtraction is missing", "issue #12")


async def test_fetch_task_from_work_tree_issue_file_and_base_ref(host: LocalGitHost, sample_repo: Path) -> None:
    first = git(sample_repo, "rev-parse", "HEAD")
    git(sample_repo, "branch", "stable")
    (sample_repo / "later.txt").write_text("later\n")
    git(sample_repo, "add", "-A")
    git(sample_repo, "commit", "-qm", "later")
    issue = sample_repo / ".forgeflow" / "issues" / "7.md"
    issue.parent.mkdir(parents=True)
    issue.write_text("Fix the thing\nmore words\n")
    task = await host.fetch_task(FetchTaskInput(repo=str(sample_repo), issue_number=7, base_ref="stable"))
    assert (task.title, task.source) == ("Fix the thing", "issue #7")
    assert (task.base_sha, task.base_branch) == (first, "stable")
    by_sha = await host.fetch_task(FetchTaskInput(repo=str(sample_repo), spec_content="x", base_ref=first))
    assert (by_sha.base_sha, by_sha.base_branch) == (first, "main")


async def test_fetch_task_of_a_pull_request_branch(host: LocalGitHost, sample_repo: Path) -> None:
    base = git(sample_repo, "rev-parse", "HEAD")
    git(sample_repo, "checkout", "-qb", "feature/sub")
    (sample_repo / "calc" / "sub.py").write_text("def sub(a, b):\n    return a - b\n")
    git(sample_repo, "add", "-A")
    git(sample_repo, "commit", "-qm", "sub")
    head = git(sample_repo, "rev-parse", "HEAD")
    git(sample_repo, "checkout", "-q", "main")
    pr_file = sample_repo / ".forgeflow" / "prs" / "3"
    pr_file.parent.mkdir(parents=True)
    pr_file.write_text("feature/sub\nAdds subtraction.\n")
    task = await host.fetch_task(FetchTaskInput(repo=str(sample_repo), pr_number=3))
    assert (task.base_sha, task.head_sha, task.source) == (base, head, "PR #3")
    assert "feature/sub" in task.title
    assert "Adds subtraction." in task.body


async def test_fetch_task_errors_name_the_problem(host: LocalGitHost, sample_repo: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    await expect_failure(
        host.fetch_task(FetchTaskInput(repo=str(plain), spec_content="x")),
        "NotARepository",
        f"repo {plain}: not a git repository",
    )
    # A directory inside a repository is not that repository.
    await expect_failure(
        host.fetch_task(FetchTaskInput(repo=str(sample_repo / "calc"), spec_content="x")),
        "NotARepository",
        "not a git repository",
    )
    await expect_failure(
        host.fetch_task(FetchTaskInput(repo=str(tmp_path / "absent"), spec_content="x")),
        "NotARepository",
        "no such directory",
    )
    await expect_failure(
        host.fetch_task(FetchTaskInput(repo=str(sample_repo), issue_number=12)),
        "TaskNotFound",
        "issue file .forgeflow/issues/12.md not found",
    )
    await expect_failure(
        host.fetch_task(FetchTaskInput(repo=str(sample_repo), spec_content="x", base_ref="nope")),
        "RefNotFound",
        "no commit for ref 'nope'",
    )
    await expect_failure(
        host.fetch_task(FetchTaskInput(repo=str(sample_repo), pr_number=4)),
        "TaskNotFound",
        ".forgeflow/prs/4",
    )
    await expect_failure(host.fetch_task(FetchTaskInput(repo=str(sample_repo))), "NoTask", "give spec_content")


# --- reads ----------------------------------------------------------------------------------


async def test_reads_at_a_commit(host: LocalGitHost, sample_repo: Path) -> None:
    repo, first = parse_repo(str(sample_repo)), git(sample_repo, "rev-parse", "HEAD")
    (sample_repo / "calc" / "__init__.py").write_text("def add(a, b):\n    return a + b + 0\n")
    (sample_repo / "README.md").write_text("hi\n")
    git(sample_repo, "add", "-A")
    git(sample_repo, "commit", "-qm", "second")
    second = git(sample_repo, "rev-parse", "HEAD")

    assert await host.read_file(repo, first, "calc/__init__.py") == b"def add(a, b):\n    return a + b\n"
    assert await host.read_file(repo, first, "README.md") is None
    assert await host.read_file(repo, first, "calc") is None  # a directory is not a file
    assert await host.read_file(repo, second, "README.md") == b"hi\n"
    assert await host.list_files(repo, first) == ["calc/__init__.py", "tests/test_calc.py"]
    assert await host.list_files(repo, second) == ["README.md", "calc/__init__.py", "tests/test_calc.py"]
    diff = await host.diff(repo, first, second)
    assert "diff --git a/README.md b/README.md" in diff
    assert "-    return a + b\n+    return a + b + 0" in diff
    await expect_failure(host.read_file(repo, "0" * 40, "README.md"), "RefNotFound", "0" * 40)
    await expect_failure(host.list_files(repo, "--output=/tmp/x"), "RefNotFound")


async def test_tree_entries_and_blobs(host: LocalGitHost, sample_repo: Path, tmp_path: Path) -> None:
    (sample_repo / "link").symlink_to("calc/__init__.py")
    git(sample_repo, "add", "-A")
    git(sample_repo, "commit", "-qm", "link")
    repo, head = parse_repo(str(sample_repo)), git(sample_repo, "rev-parse", "HEAD")
    tree = {entry.path: entry for entry in await host.tree(repo, head)}
    assert sorted(tree) == ["calc/__init__.py", "link", "tests/test_calc.py"]
    assert (tree["link"].mode, tree["link"].size, tree["link"].is_link) == ("120000", 16, True)
    assert tree["calc/__init__.py"].is_file and tree["calc/__init__.py"].size == 32
    found = await host.entries(repo, head, ["calc", "calc/__init__.py", "link", "link/x", "nope", "*"])
    # Each named path that exists, folders included (as CodeHost.entries says); nothing under a link.
    assert [(e.path, e.mode) for e in found] == [("calc", "040000"), ("calc/__init__.py", "100644"), ("link", "120000")]
    wanted = [tree["link"].object_id, "0" * 40, tree["calc/__init__.py"].object_id]
    read = [blob.data async for blob in host.read_blobs(repo, wanted)]
    assert read == [b"calc/__init__.py", None, b"def add(a, b):\n    return a + b\n"]
    await expect_failure(host.tree(repo, "0" * 40), "RefNotFound", "0" * 40)
    await expect_failure(host.tree(repo, "--output=/tmp/x"), "RefNotFound")
    await expect_failure(host.entries(parse_repo(str(sample_repo / "calc")), head, ["x"]), "NotARepository")


# --- land_changes ---------------------------------------------------------------------------


def snapshot(repo: Path) -> dict[str, object]:
    """Everything of the user's that land_changes must leave alone."""
    return {
        "head": git(repo, "rev-parse", "HEAD"),
        "branch": git(repo, "symbolic-ref", "HEAD"),
        "index": (repo / ".git" / "index").read_bytes(),
        "status": git(repo, "--no-optional-locks", "status", "--porcelain"),  # leaves the index as is
        "staged": git(repo, "diff", "--cached"),
        "unstaged": git(repo, "diff"),
        "calc": (repo / "calc" / "__init__.py").read_text(),
        "branches": set(git(repo, "for-each-ref", "--format=%(refname)", "refs/heads/").split()),
    }


async def test_land_changes_commits_overlay_without_touching_the_user(
    host: LocalGitHost, blobs: BlobStore, sample_repo: Path
) -> None:
    base = git(sample_repo, "rev-parse", "HEAD")
    (sample_repo / "calc" / "__init__.py").write_text("# my unsaved work\n")
    (sample_repo / "notes.txt").write_text("staged\n")
    git(sample_repo, "add", "notes.txt")
    before = snapshot(sample_repo)

    result = await host.land_changes(land(sample_repo, blobs))

    assert snapshot(sample_repo) == {
        **before,
        "branches": {"refs/heads/main", "refs/heads/forgeflow/run-1"},
    }
    assert result.branch == "forgeflow/run-1"
    assert result.files_changed == ["calc/__init__.py", "calc/more/sub.py", "tests/test_calc.py"]
    assert git(sample_repo, "rev-parse", "forgeflow/run-1") == result.commit_sha
    assert git(sample_repo, "rev-list", "--parents", "-n1", result.commit_sha).split() == [result.commit_sha, base]
    assert git(sample_repo, "ls-tree", "-r", "--name-only", result.commit_sha).splitlines() == [
        "calc/__init__.py",
        "calc/more/sub.py",
    ]
    assert git(sample_repo, "show", f"{result.commit_sha}:calc/__init__.py") == "def add(a, b):\n    return b + a"
    meta = git(sample_repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%aI|%cI|%B", result.commit_sha)
    assert meta.split("|") == [
        "forgeflow <forgeflow@localhost>",
        "forgeflow <forgeflow@localhost>",
        "2025-01-02T03:04:05+00:00",
        "2025-01-02T03:04:05+00:00",
        "Rework calc\n\nforgeflow run run-1",
    ]


async def test_land_changes_keeps_executable_mode(host: LocalGitHost, blobs: BlobStore, sample_repo: Path) -> None:
    script = sample_repo / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    git(sample_repo, "add", "-A")
    git(sample_repo, "commit", "-qm", "script")
    req = land(sample_repo, blobs, overlay={"run.sh": blobs.put(b"#!/bin/sh\necho bye\n"), "new.sh": blobs.put(b"x")})
    result = await host.land_changes(req)
    modes = git(sample_repo, "ls-tree", result.commit_sha, "run.sh", "new.sh")
    assert [line.split()[0] for line in modes.splitlines()] == ["100644", "100755"]  # new.sh, run.sh


async def test_land_changes_retry_is_idempotent(host: LocalGitHost, blobs: BlobStore, sample_repo: Path) -> None:
    req = land(sample_repo, blobs)
    first = await host.land_changes(req)
    again = await host.land_changes(req)
    assert again == first
    assert git(sample_repo, "rev-list", "--count", f"{req.parent_sha}..forgeflow/run-1") == "1"


async def test_land_changes_second_round_and_stale_expectation(
    host: LocalGitHost, blobs: BlobStore, sample_repo: Path
) -> None:
    first = await host.land_changes(land(sample_repo, blobs))
    second_req = land(
        sample_repo,
        blobs,
        parent_sha=first.commit_sha,
        expected_branch_sha=first.commit_sha,
        overlay={"calc/more/sub.py": blobs.put(b"def sub(a, b):\n    return a - b  # round 2\n")},
        message="Round 2",
    )
    second = await host.land_changes(second_req)
    assert git(sample_repo, "rev-parse", f"{second.commit_sha}^") == first.commit_sha
    assert git(sample_repo, "rev-parse", "forgeflow/run-1") == second.commit_sha
    assert (await host.land_changes(second_req)).commit_sha == second.commit_sha  # retry of round 2

    stale = land(sample_repo, blobs, parent_sha=first.commit_sha, expected_branch_sha=first.commit_sha, message="Other")
    await expect_failure(host.land_changes(stale), "BranchMoved", first.commit_sha, second.commit_sha)
    fresh = land(sample_repo, blobs, message="Different message, so a different commit")
    await expect_failure(host.land_changes(fresh), "BranchMoved", second.commit_sha, "should not exist")
    assert git(sample_repo, "rev-parse", "forgeflow/run-1") == second.commit_sha


@pytest.mark.parametrize("branch", ["main", "feature/x", "forgeflow/", "forgeflow/bad..name"])
async def test_land_changes_refuses_other_branches(
    host: LocalGitHost, blobs: BlobStore, sample_repo: Path, branch: str
) -> None:
    before = snapshot(sample_repo)
    await expect_failure(host.land_changes(land(sample_repo, blobs, branch=branch)), "BranchNotAllowed", branch)
    assert snapshot(sample_repo) == before


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.py", "calc/../../x", ".git/config", "sub/.git/hooks/x"])
async def test_land_changes_refuses_unsafe_paths(
    host: LocalGitHost, blobs: BlobStore, sample_repo: Path, path: str
) -> None:
    req = land(sample_repo, blobs, overlay={path: blobs.put(b"x"), "ok.txt": blobs.put(b"y")})
    await expect_failure(host.land_changes(req), "UnsafePath", path)
    assert git(sample_repo, "for-each-ref", "refs/heads/forgeflow/") == ""


# --- publish / review / comment records -----------------------------------------------------


async def test_publish_change_writes_a_record(host: LocalGitHost, blobs: BlobStore, sample_repo: Path) -> None:
    await host.land_changes(land(sample_repo, blobs))
    req = PublishInput(
        repo=str(sample_repo),
        branch="forgeflow/run-1",
        base_branch="main",
        title="Rework calc",
        body="What changed.",
        run_id="run-1",
    )
    assert (await host.publish_change(req)).ref == "forgeflow/run-1"
    record = sample_repo / ".git" / "forgeflow" / "prs" / "forgeflow__run-1.md"
    text = record.read_text()
    for needle in ("Rework calc", "What changed.", "`main`", "`run-1`", "`forgeflow/run-1`"):
        assert needle in text
    await host.publish_change(req)
    assert record.read_text() == text
    await expect_failure(
        host.publish_change(req.model_copy(update={"branch": "forgeflow/none"})), "BranchNotFound", "forgeflow/none"
    )


async def test_post_review_writes_round_and_latest(host: LocalGitHost, sample_repo: Path) -> None:
    review = Review(
        verdict="request_changes",
        summary="Close, but not yet.",
        comments=[
            ReviewComment(path="calc/__init__.py", line=2, severity="major", category="bug", body="Wrong order."),
            ReviewComment(path="README.md", severity="info", category="style", body="Mention sub."),
        ],
    )
    req = PostReviewInput(
        repo=str(sample_repo), pr_ref="forgeflow/run-1", commit_sha="c0ffee", review=review, run_id="run-1", round=2
    )
    posted = await host.post_review(req)
    folder = sample_repo / ".git" / "forgeflow" / "reviews" / "forgeflow__run-1"
    assert posted.location == str(folder / "round-2.md")
    text = (folder / "round-2.md").read_text()
    assert (folder / "latest.md").read_text() == text
    for needle in (
        "request_changes",
        "Close, but not yet.",
        "calc/__init__.py:2 [major/bug] Wrong order.",
        "README.md [info/style] Mention sub.",
        "c0ffee",
        "run-1",
    ):
        assert needle in text
    assert (await host.post_review(req)) == posted
    assert (folder / "round-2.md").read_text() == text


async def test_post_comment_appends_once_per_marker(host: LocalGitHost, sample_repo: Path) -> None:
    req = PostCommentInput(
        repo=str(sample_repo), issue_number=12, body="## Plan\n\n1. add sub", run_id="r", step="plan"
    )
    posted = await host.post_comment(req)
    path = sample_repo / ".git" / "forgeflow" / "comments" / "issue-12.md"
    assert posted.location == str(path)
    assert (await host.post_comment(req)) == posted  # the retry finds its marker
    other = req.model_copy(update={"step": "escalation-1-0", "body": "help <!-- forgeflow:r:later -->"})
    await host.post_comment(other)
    text = path.read_text()
    assert text.count("<!-- forgeflow:r:plan -->") == 1
    assert text.count("1. add sub") == 1
    assert text.count("<!-- forgeflow:r:escalation-1-0 -->") == 1
    # A body quoting a marker cannot stand in for that comment later.
    later = req.model_copy(update={"step": "later", "body": "the real one"})
    await host.post_comment(later)
    assert "the real one" in path.read_text()

    on_branch = PostCommentInput(repo=str(sample_repo), branch="forgeflow/run-1", body="b", run_id="r", step="s")
    assert (await host.post_comment(on_branch)).location.endswith("/comments/forgeflow__run-1.md")
    no_target = PostCommentInput(repo=str(sample_repo), body="b", run_id="run/1", step="s")
    assert (await host.post_comment(no_target)).location.endswith("/comments/run-run__1.md")


# --- land_changes and symbolic links --------------------------------------------------------


@pytest.fixture
def linked_repo(sample_repo: Path, tmp_path: Path) -> Path:
    """The sample repository with a link to a directory of the worker's and a link to a file."""
    (tmp_path / "host").mkdir()
    (sample_repo / "dirlink").symlink_to(tmp_path / "host")
    (sample_repo / "filelink").symlink_to("calc/__init__.py")
    git(sample_repo, "add", "-A")
    git(sample_repo, "commit", "-qm", "links")
    return sample_repo


@pytest.mark.parametrize("path", ["dirlink/new.txt", "dirlink/deeper/new.txt"])
@pytest.mark.parametrize("deleted", [False, True])
async def test_land_changes_refuses_paths_under_a_link(
    host: LocalGitHost, blobs: BlobStore, linked_repo: Path, path: str, deleted: bool
) -> None:
    overlay = {path: None if deleted else blobs.put(b"x"), "ok.txt": blobs.put(b"y")}
    await expect_failure(host.land_changes(land(linked_repo, blobs, overlay=overlay)), "UnsafePath", path, "dirlink")
    assert git(linked_repo, "for-each-ref", "refs/heads/forgeflow/") == ""


async def test_land_changes_needs_approval_to_change_a_link(
    host: LocalGitHost, blobs: BlobStore, linked_repo: Path
) -> None:
    overlay = {"filelink": blobs.put(b"a file now\n"), "dirlink": None, "calc/__init__.py": blobs.put(b"x = 1\n")}
    err = await expect_failure(
        host.land_changes(land(linked_repo, blobs, overlay=overlay)), "LinkChange", "dirlink, filelink"
    )
    assert err.details == (["dirlink", "filelink"],)
    half = land(linked_repo, blobs, overlay=overlay, approved_link_changes=["filelink"])
    err = await expect_failure(host.land_changes(half), "LinkChange", "dirlink")
    assert err.details == (["dirlink"],) and git(linked_repo, "for-each-ref", "refs/heads/forgeflow/") == ""

    approved = land(linked_repo, blobs, overlay=overlay, approved_link_changes=["filelink", "dirlink"])
    result = await host.land_changes(approved)
    listing = git(linked_repo, "ls-tree", result.commit_sha, "filelink", "dirlink", "calc/__init__.py")
    assert [line.split()[0] for line in listing.splitlines()] == ["100644", "100644"]  # calc/__init__.py, filelink
    assert git(linked_repo, "show", f"{result.commit_sha}:filelink") == "a file now"


@pytest.mark.parametrize(
    "path", [".git./x", ".GIT/config", "calc/Git~1/x", "calc/a\x00b.py", "calc//x.py", "./calc/x.py", "calc/x.py "]
)
async def test_land_changes_refuses_paths_the_tools_would_refuse_or_rewrite(
    host: LocalGitHost, blobs: BlobStore, sample_repo: Path, path: str
) -> None:
    req = land(sample_repo, blobs, overlay={path: blobs.put(b"x")})
    await expect_failure(host.land_changes(req), "UnsafePath", repr(path))
    assert git(sample_repo, "for-each-ref", "refs/heads/forgeflow/") == ""
