"""Code hosts are looked up by the kind of the repository reference, from one table."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.codehost.host import CodeHostActivities, CodeHosts
from activities.codehost.local import LocalGitHost
from activities.trees import TreeArchives
from contracts.codehost import FetchTaskInput
from contracts.repo import parse_repo
from storage.store import ObjectStore
from tests.blobs import local_blobs


def test_each_kind_finds_its_host(tmp_path: Path) -> None:
    local = LocalGitHost(local_blobs(tmp_path / "blobs"))
    hosts = CodeHosts({"local": local, "github": None})
    assert hosts.for_repo(parse_repo("/srv/repo")) is local
    assert hosts.for_repo(parse_repo("file:///srv/repo")) is local
    with pytest.raises(ApplicationError) as err:
        hosts.for_repo(parse_repo("acme/calc"))
    assert err.value.type == "CodeHostUnavailable" and err.value.non_retryable
    assert "repo acme/calc: the github code host is not configured on this worker" in str(err.value)


def test_a_kind_without_a_shape_is_refused_when_the_table_is_built(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no repository shape for code host kind\(s\) \['gitlub'\]"):
        CodeHosts({"local": LocalGitHost(local_blobs(tmp_path / "blobs")), "gitlub": None})


async def test_an_activity_on_an_unserved_kind_fails_without_retrying(tmp_path: Path) -> None:
    hosts = CodeHosts({"local": LocalGitHost(local_blobs(tmp_path / "blobs"))})
    acts = CodeHostActivities(hosts, TreeArchives(ObjectStore(str(tmp_path / "store"))))
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(acts.fetch_task, FetchTaskInput(repo="acme/calc", spec_content="x"))
    assert err.value.type == "CodeHostUnavailable" and err.value.non_retryable
