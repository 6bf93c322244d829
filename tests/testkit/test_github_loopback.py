"""The loopback GitHub server through the real githubkit client: reads, Git Data writes, GitHub's errors."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from githubkit import GitHub
from githubkit.exception import RequestFailed

from testkit.loopback.github_api import GitHubLoopback, Issue
from testkit.tools import git

TOKEN = "ghp_loopback_0123456789"


@pytest.fixture
def server(sample_repo: Path) -> Iterator[GitHubLoopback]:
    with GitHubLoopback("acme", "calc", sample_repo, TOKEN) as gh:
        gh.issues[7] = Issue(title="Add subtract", body="Please add calc.subtract.", labels=["enhancement"])
        yield gh


def client(server: GitHubLoopback, token: str = TOKEN) -> GitHub[Any]:
    return GitHub(token, base_url=server.base_url, auto_retry=False, http_cache=False)


async def test_reads(server: GitHubLoopback, sample_repo: Path) -> None:
    gh = client(server)
    repo = (await gh.rest.repos.async_get("acme", "calc")).json()
    assert repo["default_branch"] == "main" and repo["full_name"] == "acme/calc"
    issue = (await gh.rest.issues.async_get("acme", "calc", 7)).json()
    label = issue["labels"][0]
    assert issue["title"] == "Add subtract" and isinstance(label, dict) and label.get("name") == "enhancement"
    head = (await gh.rest.repos.async_get_commit("acme", "calc", "main")).json()["sha"]
    assert head == git(sample_repo, "rev-parse", "HEAD")
    archive = (await gh.rest.repos.async_download_tarball_archive("acme", "calc", head)).content
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = tar.getnames()
    assert f"acme-calc-{head[:7]}/calc/__init__.py" in names


async def test_git_data_writes_are_real_git_objects(server: GitHubLoopback, sample_repo: Path) -> None:
    gh = client(server)
    base = git(sample_repo, "rev-parse", "HEAD")
    blob = (await gh.rest.git.async_create_blob("acme", "calc", content="X = 1\n", encoding="utf-8")).json()["sha"]
    tree = (
        await gh.rest.git.async_create_tree(
            "acme", "calc", base_tree=git(sample_repo, "rev-parse", "HEAD^{tree}"),
            tree=[{"path": "calc/extra.py", "mode": "100644", "type": "blob", "sha": blob}],
        )
    ).json()["sha"]  # fmt: skip
    commit = (
        await gh.rest.git.async_create_commit("acme", "calc", message="Add extra", tree=tree, parents=[base])
    ).json()
    await gh.rest.git.async_create_ref("acme", "calc", ref="refs/heads/forgeflow/r1", sha=commit["sha"])
    assert git(sample_repo, "show", "forgeflow/r1:calc/extra.py") == "X = 1"
    assert git(sample_repo, "rev-parse", "forgeflow/r1^") == base
    with pytest.raises(RequestFailed) as refused:  # a ref update that is not a fast forward is refused
        await gh.rest.git.async_update_ref("acme", "calc", "heads/forgeflow/r1", sha=base, force=False)
    assert refused.value.response.status_code == 422


async def test_github_error_shapes(server: GitHubLoopback) -> None:
    wrong, gh = client(server, "wrong"), client(server)  # keep the clients referenced while in use
    with pytest.raises(RequestFailed) as bad_key:
        await wrong.rest.repos.async_get("acme", "calc")
    assert bad_key.value.response.status_code == 401 and bad_key.value.response.json()["message"] == "Bad credentials"
    server.rate_limit_next = 1
    with pytest.raises(RequestFailed) as limited:
        await gh.rest.issues.async_get("acme", "calc", 7)
    assert limited.value.response.status_code == 403 and limited.value.response.headers["retry-after"] == "30"
    with pytest.raises(RequestFailed) as missing:
        await gh.rest.issues.async_get("acme", "calc", 99)
    assert missing.value.response.status_code == 404
