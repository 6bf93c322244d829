"""Symbolic links on the GitHub host: the real githubkit client against the loopback GitHub (a real git repository)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from githubkit import GitHub
from temporalio.exceptions import ApplicationError

from activities.blobstore import BlobStore
from activities.codehost._commit_cache import CommitCache
from activities.codehost.github import GitHubHost
from activities.codehost.host import CodeHosts
from activities.codehost.local import LocalGitHost
from contracts.codehost import LandChangesInput
from contracts.repo import parse_repo
from policy.host_rules import mapping_ref
from testkit.loopback.github_api import GitHubLoopback
from testkit.tools import git
from tests.activities.test_tool_limits import git_processes
from tests.activities.test_tools import Tools
from tests.blobs import local_blobs

TOKEN = "ghp_loopback_links"


@pytest.fixture
def host_dir(tmp_path: Path) -> Path:
    found = tmp_path / "host"
    found.mkdir()
    return found


@pytest.fixture
def github(sample_repo: Path, host_dir: Path) -> Iterator[GitHubLoopback]:
    """acme/calc with an absolute link to a worker directory, a link to a file and an executable."""
    os.symlink(host_dir, sample_repo / "dirlink")
    os.symlink("calc/__init__.py", sample_repo / "filelink")
    (sample_repo / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (sample_repo / "run.sh").chmod(0o755)
    git(sample_repo, "add", "-A")
    git(sample_repo, "commit", "-qm", "links")
    with GitHubLoopback("acme", "calc", sample_repo, TOKEN) as gh:
        yield gh


def make_host(github: GitHubLoopback, tmp_path: Path, blobs: BlobStore) -> GitHubHost:
    client: GitHub[Any] = GitHub(TOKEN, base_url=github.base_url, auto_retry=False, http_cache=False)
    return GitHubHost(client, CommitCache(tmp_path / "repos"), blobs)


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return local_blobs(tmp_path / "blobs")


@pytest.fixture
def host(github: GitHubLoopback, tmp_path: Path, blobs: BlobStore) -> GitHubHost:
    return make_host(github, tmp_path, blobs)


def land(
    repo: Path, blobs: BlobStore, overlay: dict[str, bytes | None], approved: list[str] | None = None
) -> LandChangesInput:
    return LandChangesInput(
        repo="acme/calc",
        branch="forgeflow/links",
        parent_sha=git(repo, "rev-parse", "HEAD"),
        overlay={path: None if data is None else blobs.put(data) for path, data in overlay.items()},
        message="Change links",
        timestamp="2026-01-01T00:00:00+00:00",
        approved_link_changes=approved or [],
    )


async def failure(host: GitHubHost, req: LandChangesInput, type_: str) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await host.land_changes(req)
    assert caught.value.type == type_ and caught.value.non_retryable, caught.value
    return caught.value


async def test_the_cache_holds_the_remote_tree_exactly_links_included(
    host: GitHubHost, sample_repo: Path, tmp_path: Path, host_dir: Path
) -> None:
    head = git(sample_repo, "rev-parse", "HEAD")
    entries = {entry.path: entry for entry in await host.tree(parse_repo("acme/calc"), head)}
    assert (entries["dirlink"].mode, entries["filelink"].mode, entries["run.sh"].mode) == ("120000", "120000", "100755")
    cache = tmp_path / "repos" / "acme__calc"
    assert git(cache, "rev-parse", f"{mapping_ref(head)}^{{tree}}") == git(sample_repo, "rev-parse", "HEAD^{tree}")
    assert os.listdir(host_dir) == []


async def test_land_changes_refuses_writes_and_deletes_under_a_link(
    host: GitHubHost, blobs: BlobStore, sample_repo: Path, github: GitHubLoopback
) -> None:
    for overlay in ({"dirlink/new.txt": b"x"}, {"dirlink/deeper/new.txt": None}):
        err = await failure(host, land(sample_repo, blobs, {**overlay, "ok.txt": b"y"}), "UnsafePath")
        assert next(iter(overlay)) in err.message and "'dirlink', a symbolic link" in err.message
    err = await failure(host, land(sample_repo, blobs, {".GIT/config": b"x"}), "UnsafePath")
    assert "inside .git" in err.message
    assert git(sample_repo, "branch", "--list", "forgeflow/*") == ""
    assert not any(method == "POST" for method, _ in github.requests)  # nothing was written to GitHub


async def test_land_changes_commits_link_changes_only_when_approved(
    host: GitHubHost, blobs: BlobStore, sample_repo: Path
) -> None:
    overlay = {
        "filelink": b"a file now\n",
        "dirlink": None,
        "run.sh": b"#!/bin/sh\necho bye\n",
        "calc/more/new.py": b"x = 1\n",
    }
    err = await failure(host, land(sample_repo, blobs, overlay), "LinkChange")
    assert err.details == (["dirlink", "filelink"],) and "dirlink, filelink" in err.message
    assert (await failure(host, land(sample_repo, blobs, overlay, ["dirlink"]), "LinkChange")).details == (
        ["filelink"],
    )
    assert git(sample_repo, "branch", "--list", "forgeflow/*") == ""

    result = await host.land_changes(land(sample_repo, blobs, overlay, ["dirlink", "filelink"]))
    listing = git(sample_repo, "ls-tree", "-r", result.commit_sha)
    modes = {line.split("\t")[1]: line.split()[0] for line in listing.splitlines()}
    assert modes == {
        "calc/__init__.py": "100644",
        "calc/more/new.py": "100644",
        "filelink": "100644",
        "run.sh": "100755",
        "tests/test_calc.py": "100644",
    }
    assert git(sample_repo, "show", f"{result.commit_sha}:filelink") == "a file now"


async def test_tools_on_github_refuse_writes_through_links_and_search_cheaply(
    github: GitHubLoopback, sample_repo: Path, tmp_path: Path, host_dir: Path
) -> None:
    tools = Tools(
        sample_repo,
        tmp_path,
        hosts=lambda blobs: CodeHosts({"local": LocalGitHost(blobs), "github": make_host(github, tmp_path, blobs)}),
        repo_ref="acme/calc",
    )
    refused = await tools.call("write_file", path="dirlink/new.txt", content="x")
    assert refused.is_error and f"dirlink is a symbolic link in the repository (-> {host_dir})" in refused.content
    replaced = await tools.call("write_file", path="filelink", content="now a file\n")
    assert "replaces the link with a regular file" in replaced.content and "maintainer's approval" in replaced.content
    with git_processes() as started:  # the commit is cached by now: one listing, one blob reader
        found = await tools.call("search", pattern=r"return|echo|now")
    assert found.content.splitlines() == [
        "filelink:1: now a file",
        "calc/__init__.py:2: return a + b",
        "run.sh:2: echo hi",
    ]
    assert len(started) <= 2, started
    assert os.listdir(host_dir) == []
