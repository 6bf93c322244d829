"""Symbolic links committed in the repository: the tools write and read nothing through them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from testkit.tools import git
from tests.activities.test_tools import Tools


@pytest.fixture
def host_dir(tmp_path: Path) -> Path:
    """A directory of the worker's that a committed link points at."""
    found = tmp_path / "host"
    found.mkdir()
    (found / "secret.txt").write_text("the worker's own file\n")
    return found


@pytest.fixture
def tools(sample_repo: Path, tmp_path: Path, host_dir: Path) -> Tools:
    os.symlink(host_dir, sample_repo / "dirlink")
    os.symlink("calc/__init__.py", sample_repo / "filelink")
    git(sample_repo, "add", "-A")
    git(sample_repo, "commit", "-qm", "links")
    assert git(sample_repo, "ls-tree", "HEAD", "dirlink", "filelink").count("120000") == 2
    return Tools(sample_repo, tmp_path)


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("write_file", {"path": "dirlink/new.txt", "content": "x"}),
        ("write_file", {"path": "dirlink/deeper/new.txt", "content": "x"}),
        ("str_replace", {"path": "dirlink/secret.txt", "old_str": "own", "new_str": "x"}),
        ("insert", {"path": "dirlink/secret.txt", "insert_line": 0, "new_str": "x"}),
    ],
)
async def test_no_write_through_a_committed_link(
    tools: Tools, host_dir: Path, name: str, args: dict[str, object]
) -> None:
    result = await tools.call(name, **args)
    assert result.is_error
    assert (
        result.content
        == f"dirlink is a symbolic link in the repository (-> {host_dir}); forgeflow writes no file through a link"
    )
    assert result.overlay_updates == {} and tools.ws.overlay == {}
    assert sorted(os.listdir(host_dir)) == ["secret.txt"]


async def test_no_read_through_a_committed_link(tools: Tools, host_dir: Path) -> None:
    result = await tools.call("read_file", path="dirlink/secret.txt")
    assert result.is_error and "forgeflow reads no file through a link" in result.content
    assert "the worker's own file" not in result.content
    found = await tools.call("search", pattern="worker's own")
    assert found.content == "(no matches)"


async def test_writing_a_link_replaces_it_and_says_it_needs_approval(tools: Tools) -> None:
    read = await tools.call("read_file", path="filelink")
    assert read.is_error and "filelink is a symbolic link in the repository (-> calc/__init__.py)" in read.content
    edit = await tools.call("str_replace", path="filelink", old_str="calc", new_str="x")
    assert edit.is_error and "does not follow links" in edit.content and tools.ws.overlay == {}
    result = await tools.call("write_file", path="filelink", content="now a file\n")
    assert not result.is_error
    assert result.content == (
        "wrote filelink\nnote: filelink is a symbolic link in the repository (-> calc/__init__.py); "
        "this replaces the link with a regular file, and committing that needs a maintainer's approval"
    )
    assert tools.text("filelink") == "now a file\n"
    assert (await tools.call("read_file", path="filelink")).content == "    1| now a file"
