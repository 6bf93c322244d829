"""File access under a directory that untrusted content shaped: never through a symbolic link.

A workspace copy holds whatever the repository committed (links to anywhere included) and whatever
sandboxed code wrote there; the report directory is written by the sandbox. Host-side code reads
and writes such trees only through these functions: every path is walked one component at a time
from a directory descriptor with O_NOFOLLOW, so a link planted anywhere on the way ends the walk
instead of leading out of the tree; reads take regular files only (not a FIFO that would block, a
device, or a directory) and at most a stated number of bytes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NOT_THERE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)  # ELOOP: O_NOFOLLOW met a link


class UnsafeTreeError(OSError):
    """A path that would pass through a symbolic link, or is not what it must be (a file, a folder)."""


@dataclass(frozen=True)
class Read:
    """A bounded read: the first `limit` bytes of a file and its real size."""

    data: bytes
    size: int

    @property
    def truncated(self) -> bool:
        return self.size > len(self.data)


def open_root(path: Path) -> int:
    """A descriptor of `path`, which must itself be a real directory (not a link to one)."""
    return os.open(path, _DIR_FLAGS)


@contextlib.contextmanager
def root(path: Path) -> Iterator[int]:
    fd = open_root(path)
    try:
        yield fd
    finally:
        os.close(fd)


def _parts(relpath: str) -> list[str]:
    parts = [p for p in relpath.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise UnsafeTreeError(errno.EINVAL, f"not a clean relative path: {relpath!r}")
    return parts


@contextlib.contextmanager
def _parent(root_fd: int, parts: list[str], *, create: bool = False) -> Iterator[int]:
    """The directory holding the last of `parts`, reached without following any link."""
    fd = os.dup(root_fd)
    try:
        for name in parts[:-1]:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o755, dir_fd=fd)
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as err:
                if err.errno in (errno.ELOOP, errno.ENOTDIR) and create:
                    raise UnsafeTreeError(
                        err.errno,
                        f"{name!r} on the way to {'/'.join(parts)!r} is not a folder "
                        "(a symbolic link, or a file): nothing is written through it",
                    ) from None
                raise
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def read_file(root_fd: int, relpath: str, limit: int) -> Read | None:
    """The first `limit` bytes of a regular file under the root; None if it is absent, a link, or
    anything but a regular file."""
    parts = _parts(relpath)
    try:
        with _parent(root_fd, parts) as parent:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent)
    except OSError as err:
        if err.errno in _NOT_THERE:
            return None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        chunks, left = [], limit
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        return Read(data=data, size=max(info.st_size, len(data)))
    finally:
        os.close(fd)


def read_text(root_fd: int, relpath: str, limit: int) -> str | None:
    found = read_file(root_fd, relpath, limit)
    return None if found is None else found.data.decode("utf-8", errors="replace")


def lstat(root_fd: int, relpath: str) -> os.stat_result | None:
    """What is at `relpath` itself (a link is reported as a link); None if absent."""
    parts = _parts(relpath)
    try:
        with _parent(root_fd, parts) as parent:
            return os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
    except OSError as err:
        if err.errno in _NOT_THERE:
            return None
        raise


def write_file(root_fd: int, relpath: str, data: bytes, mode: int = 0o644) -> None:
    """Create or replace a regular file under the root, making its folders; a link in the way is
    refused, and a link at the path itself is replaced by the file (it is never written through)."""
    parts = _parts(relpath)
    with _parent(root_fd, parts, create=True) as parent:
        name = parts[-1]
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
                os.unlink(name, dir_fd=parent)  # unlink removes the link itself
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, mode, dir_fd=parent)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)


def write_link(root_fd: int, relpath: str, target: str) -> None:
    """Create a symbolic link under the root (its target is stored, never resolved), making its
    folders; a link in the way is refused, and so is an existing entry at the path."""
    parts = _parts(relpath)
    with _parent(root_fd, parts, create=True) as parent:
        try:
            os.symlink(target, parts[-1], dir_fd=parent)
        except FileExistsError:
            raise UnsafeTreeError(errno.EEXIST, f"{relpath!r} is already there") from None


def delete(root_fd: int, relpath: str) -> None:
    """Remove a file or link under the root (never what a link points to); absent is fine."""
    parts = _parts(relpath)
    try:
        with _parent(root_fd, parts) as parent:
            os.unlink(parts[-1], dir_fd=parent)
    except OSError as err:
        if err.errno in (errno.ENOENT,):
            return
        if err.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafeTreeError(err.errno, f"{relpath!r}: a folder on the way is a symbolic link") from None
        raise


def remove_tree(root_fd: int, relpath: str) -> None:
    """Remove a folder and everything in it under the root: the path is walked without following a
    link, and shutil.rmtree works from descriptors (it never follows a link inside either)."""
    parts = _parts(relpath)
    with _parent(root_fd, parts) as parent:
        shutil.rmtree(parts[-1], dir_fd=parent)


def set_mode(root_fd: int, relpath: str, mode: int) -> None:
    """Set a folder's permission bits, reached without following any link."""
    parts = _parts(relpath)
    with _parent(root_fd, parts) as parent:
        fd = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent)
        try:
            os.fchmod(fd, mode)
        finally:
            os.close(fd)


def entries(
    top: Path, skip: frozenset[str] = frozenset(), *, folders: bool = False
) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Every entry under `top` but folders (and the folders too, with `folders`), with its relative
    path; no link is followed, folders named in `skip` are neither entered nor listed. For a tree
    nothing writes meanwhile (before or after a sandbox ran)."""
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(top / rel if rel else top) as found:
            for entry in found:
                path = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in skip:
                        stack.append(path)
                        if folders:
                            yield path, entry
                else:
                    yield path, entry


def regular_files(top: Path, *, skip: frozenset[str] = frozenset()) -> list[str]:
    """Every regular file under `top`, relative and sorted (links are neither followed nor listed)."""
    return sorted(path for path, entry in entries(top, skip) if entry.is_file(follow_symlinks=False))


def links(top: Path) -> dict[str, str]:
    """Every symbolic link under `top` (relative path → its target, as written), not followed."""
    return {path: os.readlink(entry.path) for path, entry in entries(top) if entry.is_symlink()}


def create_private(path: Path) -> int:
    """A new file only this worker can reach (in a folder no sandbox sees): refuse anything there."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


MAX_LINK_HOPS = 40  # the kernel's own limit on links followed in one lookup


def link_escapes(top: Path, relpath: str, mount: str) -> bool:
    """Whether the link at `relpath` under `top` resolves outside `top`, as it would inside a sandbox
    that sees `top` at `mount`. Resolved virtually: links are read, never followed, so the answer
    holds for chains of links too (a link into a link that climbs out escapes). Only for a tree that
    nothing writes while it is checked."""
    position = relpath.split("/")[:-1]
    pending = os.readlink(top / relpath).split("/")
    hops = 0
    if pending[0] == "":  # absolute: inside only if it names the mount itself
        inside = _under_mount(pending, mount)
        if inside is None:
            return True
        position, pending = [], inside
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not position:
                return True
            position.pop()
            continue
        candidate = [*position, part]
        try:
            info = os.lstat(top.joinpath(*candidate))
        except (FileNotFoundError, NotADirectoryError):
            position = candidate  # dangling: nothing further on disk to follow
            continue
        if not stat.S_ISLNK(info.st_mode):
            position = candidate
            continue
        hops += 1
        if hops > MAX_LINK_HOPS:
            return True
        target = os.readlink(top.joinpath(*candidate)).split("/")
        if target[0] == "":
            inside = _under_mount(target, mount)
            if inside is None:
                return True
            position, target = [], inside
        pending = target + pending
    return False


def _under_mount(parts: list[str], mount: str) -> list[str] | None:
    """An absolute target's components below `mount`, or None if it points elsewhere."""
    prefix = [p for p in mount.split("/") if p]
    rest = [p for p in parts if p]
    return rest[len(prefix) :] if rest[: len(prefix)] == prefix else None
