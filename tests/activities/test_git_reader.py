"""The read tools' git access without a process per call (issue 14): a commit is listed once, objects
come from one long-lived `git cat-file --batch`. Shown by taking git off PATH after the first use:
whatever still works needed no new process."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.codehost._reader import GitReader
from testkit.tools import git


def commit(repo: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "change")
    return git(repo, "rev-parse", "HEAD")


def init(folder: Path) -> None:
    subprocess.run(["git", "init", "-q", str(folder)], check=True)


def clone(repo: Path, into: Path) -> None:
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(into)], check=True)


async def read(reader: GitReader, cwd: Path, object_ids: list[str]) -> list[bytes | None]:
    return [blob.data async for blob in reader.read(str(cwd), object_ids)]


async def test_a_commit_is_listed_once_and_its_objects_read_by_one_process(
    sample_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = GitReader()
    head = git(sample_repo, "rev-parse", "HEAD")
    listing = await reader.listing(str(sample_repo), head)
    assert sorted(listing) == ["calc", "calc/__init__.py", "tests", "tests/test_calc.py"]
    first = listing["calc/__init__.py"].object_id
    assert await read(reader, sample_repo, [first]) == [b"def add(a, b):\n    return a + b\n"]
    assert await read(reader, sample_repo, ["0" * 40]) == [None]  # asked again of a fresh process, still none

    monkeypatch.setenv("PATH", "/nonexistent")  # no git from here on: no new process can start
    assert [e.path for e in await reader.entries(str(sample_repo), head, ["calc", "nope"])] == ["calc"]
    assert await reader.files(str(sample_repo), head) == ["calc/__init__.py", "tests/test_calc.py"]
    other = listing["tests/test_calc.py"].object_id
    assert await read(reader, sample_repo, [other, first]) == [
        (sample_repo / "tests" / "test_calc.py").read_bytes(),
        b"def add(a, b):\n    return a + b\n",
    ]
    with pytest.raises(FileNotFoundError):  # a name that can move is listed each time
        await reader.listing(str(sample_repo), "HEAD")
    await reader.close()


async def test_a_branch_name_sees_the_branch_move(sample_repo: Path) -> None:
    reader = GitReader()
    before = await reader.files(str(sample_repo), "HEAD")
    commit(sample_repo, {"new.py": "x = 1\n"})
    assert sorted(await reader.files(str(sample_repo), "HEAD")) == sorted([*before, "new.py"])
    await reader.close()


async def test_listings_are_bounded_least_recently_used_first(
    sample_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = GitReader(max_entries=6)  # one listing of this repository (4 or 5 entries) fits, not two
    first = git(sample_repo, "rev-parse", "HEAD")
    second = commit(sample_repo, {"b.txt": "b\n"})
    await reader.listing(str(sample_repo), first)
    await reader.listing(str(sample_repo), second)  # the first goes
    monkeypatch.setenv("PATH", "/nonexistent")
    assert "b.txt" in await reader.listing(str(sample_repo), second)
    with pytest.raises(FileNotFoundError):
        await reader.listing(str(sample_repo), first)


async def test_a_repository_deleted_and_fetched_again_is_read_again(sample_repo: Path, tmp_path: Path) -> None:
    """What the GitHub cache does when a cache folder is evicted: same commits, a new folder."""
    bare = tmp_path / "cache.git"
    clone(sample_repo, bare)
    reader = GitReader(max_object_bytes=0)  # nothing kept: every read asks git
    head = git(sample_repo, "rev-parse", "HEAD")
    object_id = (await reader.listing(str(bare), head))["calc/__init__.py"].object_id
    assert (await read(reader, bare, [object_id]))[0] is not None  # the shared process starts on the old folder
    shutil.rmtree(bare)
    clone(sample_repo, bare)
    assert (await reader.listing(str(bare), head))["calc/__init__.py"].object_id == object_id
    assert await read(reader, bare, [object_id]) == [b"def add(a, b):\n    return a + b\n"]
    await reader.close()


async def test_a_large_read_streams_from_a_process_of_its_own(sample_repo: Path) -> None:
    files = {f"many/f{n}.txt": f"{n}\n" for n in range(100)}
    head = commit(sample_repo, files)
    reader = GitReader()
    entries = [e for e in await reader.tree(str(sample_repo), head) if e.path.startswith("many/")]
    found = await read(reader, sample_repo, [e.object_id for e in entries])
    assert sorted(found, key=lambda data: int(data or b"0")) == [f"{n}\n".encode() for n in range(100)]
    await reader.close()


async def test_a_commits_tree_and_a_folders_repository_are_asked_once(
    sample_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = GitReader()
    head = git(sample_repo, "rev-parse", "HEAD")
    tree = await reader.tree_id(str(sample_repo), head)
    opened = await reader.repo(str(sample_repo))
    assert tree == git(sample_repo, "rev-parse", "HEAD^{tree}") and not opened.bare
    monkeypatch.setenv("PATH", "/nonexistent")
    assert await reader.tree_id(str(sample_repo), head) == tree
    assert await reader.repo(str(sample_repo)) == opened
    with pytest.raises(FileNotFoundError):  # a name that can move is asked each time
        await reader.tree_id(str(sample_repo), "HEAD")
    monkeypatch.undo()
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(Exception, match="not a git repository"):  # a refusal is not kept: asked again
        await reader.repo(str(other))
    init(other)
    assert (await reader.repo(str(other))).path == str(other)


async def test_reads_at_once_share_the_process_and_each_gets_its_own_answers(
    sample_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = commit(sample_repo, {f"f/{n}.txt": f"file {n}\n" * (n + 1) for n in range(30)})
    reader = GitReader(max_object_bytes=0)  # nothing kept: every read asks git
    entries = {e.path: e.object_id for e in await reader.tree(str(sample_repo), head) if e.path.startswith("f/")}
    ids = list(entries.values())
    await read(reader, sample_repo, ids[:1])  # the shared process is up
    monkeypatch.setenv("PATH", "/nonexistent")  # and is the only one from here on
    wanted = [[ids[(k * 7 + j) % 30] for j in range(k % 5 + 1)] for k in range(120)]
    answers = await asyncio.gather(*(read(reader, sample_repo, names) for names in wanted))
    by_id = {oid: f"file {int(path[2:-4])}\n".encode() * (int(path[2:-4]) + 1) for path, oid in entries.items()}
    assert answers == [[by_id[oid] for oid in names] for names in wanted]
    await reader.close()


async def test_a_cancelled_read_leaves_the_process_in_step(sample_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    head = commit(sample_repo, {f"g/{n}.txt": f"{n}\n" * 5000 for n in range(40)})
    reader = GitReader(max_object_bytes=0)  # nothing kept: every read asks git
    ids = {e.path: e.object_id for e in await reader.tree(str(sample_repo), head) if e.path.startswith("g/")}
    await read(reader, sample_repo, [ids["g/0.txt"]])
    monkeypatch.setenv("PATH", "/nonexistent")
    for ticks in range(6):  # cancelled before, while and after git answers
        task = asyncio.create_task(read(reader, sample_repo, list(ids.values())))
        for _ in range(ticks):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert await read(reader, sample_repo, [ids["g/3.txt"], ids["g/0.txt"]]) == [b"3\n" * 5000, b"0\n" * 5000]
    await reader.close()


async def test_when_the_process_dies_its_waiting_reads_fail_and_the_next_read_starts_another(
    sample_repo: Path,
) -> None:
    head = commit(sample_repo, {f"h/{n}.txt": f"{n}\n" * 20000 for n in range(20)})
    reader = GitReader(max_object_bytes=0)  # nothing kept: every read asks git
    ids = [e.object_id for e in await reader.tree(str(sample_repo), head) if e.path.startswith("h/")]
    await read(reader, sample_repo, ids[:1])
    # git lists h/0, h/1, h/10, ...: ids[7] is h/15.txt
    pipe = reader._batches[str(sample_repo)]._pipe
    assert pipe is not None
    waiting = [asyncio.create_task(read(reader, sample_repo, ids)) for _ in range(3)]
    await asyncio.sleep(0)
    pipe._proc.kill()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, ApplicationError) and r.type == "GitError" for r in results), results
    assert await read(reader, sample_repo, [ids[7]]) == [b"15\n" * 20000]
    await reader.close()


async def test_an_object_read_once_is_read_again_from_memory(
    sample_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = commit(sample_repo, {f"k/{n}.txt": f"{n}\n" * 100 for n in range(80)})
    reader = GitReader()
    ids = {e.path: e.object_id for e in await reader.tree(str(sample_repo), head) if e.path.startswith("k/")}
    few = [ids["k/1.txt"], ids["k/2.txt"]]
    assert await read(reader, sample_repo, few) == [b"1\n" * 100, b"2\n" * 100]
    await reader.close()  # no process left, none can start, and the repository is gone
    monkeypatch.setenv("PATH", "/nonexistent")
    shutil.rmtree(sample_repo)
    assert await read(reader, sample_repo, [*few, few[0]]) == [b"1\n" * 100, b"2\n" * 100, b"1\n" * 100]
    with pytest.raises(FileNotFoundError):  # one not kept still needs git
        await read(reader, sample_repo, [ids["k/3.txt"]])


async def test_a_read_of_many_objects_uses_those_kept_and_keeps_none(sample_repo: Path) -> None:
    head = commit(sample_repo, {f"m/{n}.txt": f"{n}\n" for n in range(100)})
    reader = GitReader()
    entries = [e for e in await reader.tree(str(sample_repo), head) if e.path.startswith("m/")]
    ids = [e.object_id for e in entries]
    await read(reader, sample_repo, ids[10:13])  # kept
    found = await read(reader, sample_repo, ids)  # streamed, with the kept three in their places
    assert found == [f"{e.path[2:-4]}\n".encode() for e in entries]
    await reader.close()
    for path in sample_repo.joinpath(".git", "objects").iterdir():  # git can answer nothing any more
        if path.name not in ("info", "pack"):
            shutil.rmtree(path)
    assert await read(reader, sample_repo, ids[10:13]) == found[10:13]
    assert await read(reader, sample_repo, ids[20:21]) == [None]  # the stream kept none of its own
