"""A commit reaches the sandbox by content (issue 13): its tree, archived under its git tree id on the
object store by the code host, unpacked by the sandbox without following any link."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from activities.codehost.host import CodeHostActivities, CodeHosts
from activities.codehost.local import LocalGitHost
from activities.sandbox._unpack import unpack_tree
from activities.trees import Member, TreeArchiveError, TreeArchives, TreeMissing, object_key, pack, unpack
from contracts.codehost import FetchTaskInput, LandChangesInput
from storage.store import ObjectStore
from testkit.s3 import S3Server
from testkit.tools import git
from tests.blobs import local_blobs, upload_tree

TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's empty tree


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "local":
        yield ObjectStore((tmp_path / "store").as_uri())
    else:
        s3: S3Server = request.getfixturevalue("s3_env")
        yield ObjectStore(s3.url(f"trees-{tmp_path.name}"))


def committed(root: Path) -> tuple[Path, str]:
    """A repository with a nested file, an executable, a link to a host file and a link to a folder."""
    repo = root / "repo"
    (repo / "pkg" / "deep").mkdir(parents=True)
    (repo / "pkg" / "deep" / "mod.py").write_text("VALUE = 1\n")
    (repo / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (repo / "run.sh").chmod(0o755)
    (repo / "passwd").symlink_to("/etc/passwd")
    (repo / "outside").symlink_to("/etc")
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "tree")
    return repo, git(repo, "rev-parse", "HEAD")


# --- the archive format -------------------------------------------------------------------------


def test_pack_then_unpack_gives_the_members_back_in_path_order() -> None:
    members = [
        Member("z.txt", "file", b"last"),
        Member("bin/tool", "file", b"#!/bin/sh\n", executable=True),
        Member("link", "link", b"/etc/passwd"),
        Member("a/b/c.txt", "file", b""),
    ]
    assert list(unpack(pack(members))) == sorted(members, key=lambda m: m.path)


def test_the_same_tree_always_packs_to_the_same_bytes() -> None:
    members = [Member("a", "file", b"1"), Member("b", "link", b"a")]
    assert pack(members) == pack(list(reversed(members)))


@pytest.mark.parametrize(
    ("kind", "what"),
    [
        (tarfile.DIRTYPE, "folder"),
        (tarfile.LNKTYPE, "hard link"),
        (tarfile.FIFOTYPE, "fifo"),
        (tarfile.CHRTYPE, "device"),
    ],
)
def test_unpack_refuses_members_a_tree_cannot_hold(kind: bytes, what: str) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(f"a-{what.replace(' ', '-')}")
        info.type = kind
        tar.addfile(info)
    with pytest.raises(TreeArchiveError, match="neither a file nor a symbolic link"):
        list(unpack(gzip.compress(raw.getvalue())))


def test_unpack_refuses_a_damaged_archive() -> None:
    with pytest.raises(TreeArchiveError, match="not a gzip stream"):
        list(unpack(b"not an archive"))
    with pytest.raises(TreeArchiveError, match="not a tar archive"):
        list(unpack(gzip.compress(b"x" * 1000)))


@pytest.mark.parametrize("bad", ["", "HEAD", "../etc", "a" * 39, "A" * 40, "g" * 40, "a" * 41])
def test_only_a_tree_id_names_an_object(bad: str) -> None:
    with pytest.raises(ValueError, match="not a git tree id"):
        object_key(bad)


def test_tree_ids_of_both_hash_functions_name_objects() -> None:
    assert object_key(TREE) == f"trees/{TREE}.tar.gz"
    assert object_key("b" * 64) == f"trees/{'b' * 64}.tar.gz"


# --- the code host uploads, once ----------------------------------------------------------------


async def test_a_commit_is_uploaded_under_its_git_tree_id(tmp_path: Path, store: ObjectStore) -> None:
    repo, sha = committed(tmp_path)
    tree = await upload_tree(store, repo, sha)
    assert tree == git(repo, "rev-parse", "HEAD^{tree}")
    members = {m.path: m for m in unpack(await TreeArchives(store).get(tree))}
    assert set(members) == {"pkg/deep/mod.py", "run.sh", "passwd", "outside"}
    assert members["pkg/deep/mod.py"] == Member("pkg/deep/mod.py", "file", b"VALUE = 1\n")
    assert members["run.sh"].executable and not members["pkg/deep/mod.py"].executable
    assert members["passwd"] == Member("passwd", "link", b"/etc/passwd")  # the target as committed


async def test_a_tree_already_in_the_store_is_not_uploaded_again(tmp_path: Path, store: ObjectStore) -> None:
    repo, sha = committed(tmp_path)
    tree = await upload_tree(store, repo, sha)
    marker = pack([Member("already", "file", b"there")])
    await TreeArchives(store).put(tree, marker)  # what a second upload would overwrite
    assert await upload_tree(store, repo, sha) == tree
    assert await TreeArchives(store).get(tree) == marker


async def test_a_missing_tree_names_the_store(tmp_path: Path, store: ObjectStore) -> None:
    with pytest.raises(TreeMissing, match=f"tree {TREE} is not in the store {store.url}"):
        await TreeArchives(store).get(TREE)


async def test_fetch_task_and_land_changes_return_trees_in_the_store(tmp_path: Path) -> None:
    """The activities, not just the helper: what a run starts from and what it commits are uploaded."""
    repo, sha = committed(tmp_path)
    store = ObjectStore((tmp_path / "store").as_uri())
    blobs = local_blobs(tmp_path / "store")
    archives = TreeArchives(store)
    acts = CodeHostActivities(CodeHosts({"local": LocalGitHost(blobs)}), archives)
    env = ActivityEnvironment()
    task = await env.run(acts.fetch_task, FetchTaskInput(repo=str(repo), spec_content="# Change it"))
    assert task.base_tree == git(repo, "rev-parse", "HEAD^{tree}") and task.head_tree is None
    assert {m.path for m in unpack(await archives.get(task.base_tree))} >= {"run.sh", "passwd"}

    overlay = {"pkg/deep/mod.py": await blobs.put_async(b"VALUE = 2\n"), "run.sh": None}
    landed = await env.run(
        acts.land_changes,
        LandChangesInput(
            repo=str(repo),
            branch="forgeflow/t",
            parent_sha=sha,
            overlay=overlay,
            message="change",
            timestamp="2026-11-29T10:00:00+00:00",
        ),
    )
    assert landed.tree == git(repo, "rev-parse", f"{landed.commit_sha}^{{tree}}") != task.base_tree
    members = {m.path: m.data for m in unpack(await archives.get(landed.tree))}
    assert members["pkg/deep/mod.py"] == b"VALUE = 2\n" and "run.sh" not in members


# --- the sandbox unpacks, never through a link --------------------------------------------------


def test_the_sandbox_unpacks_files_modes_and_links_as_they_are(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    archive = pack(
        [
            Member("pkg/mod.py", "file", b"x = 1\n"),
            Member("run.sh", "file", b"#!/bin/sh\n", executable=True),
            Member("passwd", "link", b"/etc/passwd"),
        ]
    )
    assert unpack_tree(archive, workspace) == 3
    assert (workspace / "pkg" / "mod.py").read_bytes() == b"x = 1\n"
    assert os.access(workspace / "run.sh", os.X_OK) and not os.access(workspace / "pkg" / "mod.py", os.X_OK)
    assert (workspace / "passwd").is_symlink() and os.readlink(workspace / "passwd") == "/etc/passwd"


@pytest.mark.parametrize(
    "members",
    [
        # a file written through a committed link to a host folder
        [Member("outside", "link", b"{host}"), Member("outside/planted.txt", "file", b"owned")],
        # a path that climbs out of the workspace
        [Member("../planted.txt", "file", b"owned")],
        # a second entry at a link's path, to overwrite what it points at
        [Member("x", "link", b"{host}/planted.txt"), Member("x", "link", b"y")],
    ],
    ids=["through-a-link", "dot-dot", "twice"],
)
def test_the_sandbox_never_writes_outside_the_workspace(tmp_path: Path, members: list[Member]) -> None:
    host = tmp_path / "host"
    host.mkdir()
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    members = [Member(m.path, m.kind, m.data.replace(b"{host}", str(host).encode()), m.executable) for m in members]
    raw = io.BytesIO()  # written by hand: pack() sorts, and these need their order
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            info = tarfile.TarInfo(member.path)
            if member.kind == "link":
                info.type, info.linkname = tarfile.SYMTYPE, member.data.decode()
                tar.addfile(info)
            else:
                info.size = len(member.data)
                tar.addfile(info, io.BytesIO(member.data))
    with pytest.raises(TreeArchiveError, match="cannot be written"):
        unpack_tree(gzip.compress(raw.getvalue()), workspace)
    assert list(host.iterdir()) == [] and not (tmp_path / "planted.txt").exists()
