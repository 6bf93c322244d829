"""Git on a local repository: explicit argv, no shell, an environment that cannot point git elsewhere.

Git always starts in the repository directory with discovery stopped at its parent, so a path that
is not itself a repository is never mistaken for one enclosing it, and the variables that would
relocate the repository, index or object store are removed from its environment. `open_repo`
checks a repository directory once and returns a `Repo` handle; failures a retry cannot fix are
non-retryable `ApplicationError`s whose message names the repository.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncGenerator, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from temporalio.exceptions import ApplicationError

OBJECT_ID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")  # a git object's id: SHA-1 or SHA-256

# `git rev-parse --local-env-vars`: inherited, any of these would redirect git away from `cwd`.
_REPO_LOCATION_VARS = (
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_CONFIG",
    "GIT_CONFIG_COUNT",
    "GIT_CONFIG_PARAMETERS",
    "GIT_DIR",
    "GIT_GRAFT_FILE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_NAMESPACE",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_OBJECT_DIRECTORY",
    "GIT_PREFIX",
    "GIT_REPLACE_REF_BASE",
    "GIT_SHALLOW_FILE",
    "GIT_WORK_TREE",
)


@dataclass(frozen=True)
class GitResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def text(self) -> str:
        """stdout as text without the trailing newline."""
        return self.stdout.decode("utf-8", "replace").rstrip("\n")


class GitError(Exception):
    """A git command exited non-zero."""

    def __init__(self, result: GitResult) -> None:
        self.result = result
        detail = result.stderr.strip() or "(no message)"
        super().__init__(f"{' '.join(result.argv)} exited {result.returncode}: {detail}")


def git_env(cwd: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _REPO_LOCATION_VARS}
    env["GIT_CEILING_DIRECTORIES"] = str(Path(cwd).parent)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_OPTIONAL_LOCKS"] = "0"  # never refresh the user's index behind their back
    env["LC_ALL"] = "C"
    env.update(extra or {})
    return env


async def run_git(
    cwd: str, *args: str, stdin: bytes | Path | None = None, env: Mapping[str, str] | None = None
) -> GitResult:
    """Run `git <args>` in `cwd` and collect its output; a cancelled call kills the process.

    `stdin` is bytes, or a file streamed to git (for inputs too big to hold in memory)."""
    argv = ("git", *args)
    with contextlib.ExitStack() as files:
        source: int | IO[Any] = asyncio.subprocess.DEVNULL
        if isinstance(stdin, Path):
            source = files.enter_context(stdin.open("rb"))
        elif stdin is not None:
            source = asyncio.subprocess.PIPE
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=git_env(cwd, env),
            stdin=source,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    try:
        out, err = await proc.communicate(stdin if isinstance(stdin, bytes) else None)
    except asyncio.CancelledError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None  # communicate() waits for exit
    return GitResult(argv, proc.returncode, out, err.decode("utf-8", "replace"))


async def git_out(
    cwd: str, *args: str, stdin: bytes | Path | None = None, env: Mapping[str, str] | None = None
) -> bytes:
    """stdout of `git <args>`, or GitError."""
    result = await run_git(cwd, *args, stdin=stdin, env=env)
    if not result.ok:
        raise GitError(result)
    return result.stdout


def fail(message: str, type_: str) -> ApplicationError:
    """An error no retry can fix."""
    return ApplicationError(message, type=type_, non_retryable=True)


@dataclass(frozen=True)
class Repo:
    """An opened local repository: its directory, its (common) git directory, whether it is bare, and
    the file that says what its HEAD is (a worktree's own)."""

    path: str
    git_dir: Path  # `--git-common-dir`: shared by all worktrees, so records are too
    bare: bool
    head_file: Path  # `--absolute-git-dir`/HEAD

    async def git(self, *args: str, stdin: bytes | Path | None = None, env: dict[str, str] | None = None) -> str:
        """stdout of a command that should succeed; a failure is retryable (locks, disk, …)."""
        try:
            out = await git_out(self.path, *args, stdin=stdin, env=env)
        except GitError as err:
            raise ApplicationError(f"repo {self.path}: {err}", type="GitError") from err
        return out.decode("utf-8", "replace").rstrip("\n")

    async def try_commit(self, ref: str) -> str | None:
        if ref.startswith("-"):  # would be read as an option
            return None
        result = await run_git(self.path, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        return result.text if result.ok else None

    async def commit(self, ref: str) -> str:
        found = await self.try_commit(ref)
        if found is None:
            raise fail(f"repo {self.path}: no commit for ref {ref!r}", "RefNotFound")
        return found

    async def branch_sha(self, branch: str) -> str | None:
        return await self.try_commit(f"refs/heads/{branch}")

    async def blob(self, commit: str, path: str) -> bytes | None:
        if commit.startswith("-"):
            return None
        result = await run_git(self.path, "cat-file", "blob", f"{commit}:{path}")
        return result.stdout if result.ok else None


async def open_repo(directory: str) -> Repo:
    """Check that `directory` (an absolute path) is itself a git repository."""
    path = await asyncio.to_thread(_directory, directory)
    found = await run_git(
        path, "rev-parse", "--is-bare-repository", "--path-format=absolute", "--git-common-dir", "--absolute-git-dir"
    )
    if not found.ok:
        why = found.stderr.strip().removeprefix("fatal: ")
        detail = "" if why.startswith("not a git repository") else f" ({why})"
        raise fail(f"repo {path}: not a git repository{detail}", "NotARepository")
    bare, common_dir, own_dir = found.text.splitlines()
    return Repo(path=path, git_dir=Path(common_dir), bare=bare == "true", head_file=Path(own_dir, "HEAD"))


async def repo_directory(directory: str) -> str:
    """`directory` normalised, checked to be an absolute path of a directory without starting git.

    Enough for read-only plumbing: git itself runs with discovery stopped at the directory's parent
    (see `git_env`), so a directory that is not itself a repository fails there, not elsewhere."""
    return await asyncio.to_thread(_directory, directory)


def _directory(directory: str) -> str:
    path = os.path.normpath(directory)
    if not os.path.isabs(path):
        raise fail(f"repo {directory}: not an absolute path", "NotARepository")
    if not os.path.isdir(path):
        raise fail(f"repo {path}: no such directory", "NotARepository")
    return path


# --- trees and blobs: one git process for a whole listing or a whole batch of reads ---------------

LINK_MODE = "120000"
FILE_MODES = ("100644", "100755")


@dataclass(frozen=True)
class TreeEntry:
    """One entry of a commit's tree, as `git ls-tree -l` shows it."""

    path: str
    mode: str  # git's: 100644, 100755, 120000 (symbolic link), 160000 (submodule), 040000 (directory)
    object_id: str
    size: int | None  # bytes of a blob; None for a directory or submodule

    @property
    def is_link(self) -> bool:
        return self.mode == LINK_MODE

    @property
    def is_file(self) -> bool:
        """A regular file (executable or not): what can be read, searched and edited."""
        return self.mode in FILE_MODES


@dataclass(frozen=True)
class Blob:
    object_id: str
    data: bytes | None  # None: no such object


def parse_tree(listing: bytes) -> list[TreeEntry]:
    """`git ls-tree -z -l` output as entries."""
    entries = []
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        mode, _kind, object_id, size = meta.decode().split()
        entries.append(TreeEntry(path.decode("utf-8", "replace"), mode, object_id, None if size == "-" else int(size)))
    return entries


async def list_tree(cwd: str, commit: str) -> dict[str, TreeEntry]:
    """Every entry of `commit` by path: its files, links and submodules, and the folders holding them
    (one git process; activities.codehost._reader keeps listings of commits that cannot change)."""
    if commit.startswith("-"):  # would be read as an option
        raise fail(f"repo {cwd}: no commit for ref {commit!r}", "RefNotFound")
    args = ("--literal-pathspecs", "ls-tree", "-z", "-l", "--full-tree", "-r", "-t", f"{commit}^{{commit}}")
    result = await run_git(cwd, *args)
    if not result.ok:
        raise _listing_error(cwd, commit, result)
    return {entry.path: entry for entry in parse_tree(result.stdout)}


async def tree_id(cwd: str, commit: str) -> str:
    """The id of `commit`'s tree."""
    found = (
        None if commit.startswith("-") else await run_git(cwd, "rev-parse", "--verify", "--quiet", f"{commit}^{{tree}}")
    )
    if found is None or not found.ok:
        raise fail(f"repo {cwd}: no commit for ref {commit!r}", "RefNotFound")
    return found.text


def _listing_error(cwd: str, commit: str, result: GitResult) -> ApplicationError:
    if "not a git repository" in result.stderr:
        return fail(f"repo {cwd}: not a git repository", "NotARepository")
    if "Not a valid object name" in result.stderr:
        return fail(f"repo {cwd}: no commit for ref {commit!r}", "RefNotFound")
    return ApplicationError(f"repo {cwd}: {GitError(result)}", type="GitError")


async def cat_blobs(cwd: str, object_ids: Iterable[str]) -> AsyncGenerator[Blob, None]:
    """The objects, in order, streamed from one `git cat-file --batch` process.

    Stopping early (an `aclosing` block left, a cancelled activity) kills the process."""
    proc = await asyncio.create_subprocess_exec(
        "git",
        "cat-file",
        "--batch",
        cwd=cwd,
        env=git_env(cwd),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None  # both are pipes
    wanted = list(object_ids)
    writer = asyncio.create_task(_ask(proc.stdin, wanted))  # concurrently: the pipe's buffer is small
    try:
        for oid in wanted:
            yield Blob(oid, await read_answer(proc.stdout, oid))
        await writer
    finally:
        writer.cancel()
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def _ask(stdin: asyncio.StreamWriter, object_ids: list[str]) -> None:
    for oid in object_ids:
        # An object name is one line; anything else would read as another request.
        stdin.write(oid.replace("\n", " ").encode() + b"\n")
        await stdin.drain()
    stdin.close()


async def _header(stdout: asyncio.StreamReader, name: str) -> tuple[str, str, int] | None:
    """`git cat-file --batch`'s header for `name`: (id, type, size), or None when it names no object
    ("<name> missing", or ambiguous)."""
    header = (await stdout.readline()).decode("utf-8", "replace").split()
    if len(header) != 3:
        if not header:
            raise ApplicationError(f"git cat-file ended before answering for {name}", type="GitError")
        return None
    return header[0], header[1], int(header[2])


async def read_commit_id(stdout: asyncio.StreamReader, name: str) -> str | None:
    """`git cat-file --batch`'s answer for `name`: the commit's id, or None when it names none."""
    found = await _header(stdout, name)
    if found is None:
        return None
    object_id, kind, size = found
    await stdout.readexactly(size + 1)  # the object, and the newline after it
    return object_id if kind == "commit" else None


async def read_answer(stdout: asyncio.StreamReader, oid: str) -> bytes | None:
    found = await _header(stdout, oid)
    if found is None:
        return None
    _, kind, size = found
    data = await stdout.readexactly(size)
    await stdout.readexactly(1)  # the newline after each object
    return data if kind == "blob" else None
