"""Workspace tools: each agent tool call is one run of the `run_tool` activity.

Tools see the durable workspace — a base commit on the code host plus an overlay of changed files
kept as blob keys — so any worker can serve any call, and edits are returned as overlay updates
for the workflow to record.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import activity

from activities.blobstore import BlobStore
from activities.codehost import CodeHost, CodeHosts
from contracts.agents import Workspace
from contracts.tools import ToolCallInput, ToolCallResult
from policy.paths import UnsafePathError, is_test_path, repo_path
from roles.tools import WRITE_TOOLS
from telemetry.instrument import operation

MAX_OUTPUT = 16_000
MAX_LISTED = 500
MAX_MATCHES = 200


class ToolError(Exception):
    """A problem the model can read and fix (bad path, no match, …), returned as is_error."""


class WorkspaceView:
    """Reads and edits on base commit + overlay."""

    def __init__(self, ws: Workspace, host: CodeHost, blobs: BlobStore) -> None:
        self.ws = ws
        self.host = host
        self.blobs = blobs
        self.updates: dict[str, str | None] = {}

    def _overlay(self) -> dict[str, str | None]:
        return {**self.ws.overlay, **self.updates}

    async def read_bytes(self, path: str) -> bytes | None:
        overlay = self._overlay()
        if path in overlay:
            key = overlay[path]
            return None if key is None else self.blobs.get(key)
        return await self.host.read_file(self.ws.repo, self.ws.base_sha, path)

    async def read_text(self, path: str) -> str:
        data = await self.read_bytes(path)
        if data is None:
            raise ToolError(f"{path}: no such file")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"{path}: binary file; only text files can be read or edited") from None

    async def files(self) -> list[str]:
        base = set(await self.host.list_files(self.ws.repo, self.ws.base_sha))
        for path, key in self._overlay().items():
            if key is None:
                base.discard(path)
            else:
                base.add(path)
        return sorted(base)

    def write(self, path: str, text: str) -> None:
        self.updates[path] = self.blobs.put(text.encode("utf-8"))


def _clip(text: str) -> str:
    if len(text) <= MAX_OUTPUT:
        return text
    return text[:MAX_OUTPUT] + f"\n… [{len(text) - MAX_OUTPUT} more characters cut]"


def _matches(path: str, glob: str | None) -> bool:
    return glob is None or fnmatch.fnmatch(path, glob) or fnmatch.fnmatch(path.rsplit("/", 1)[-1], glob)


async def list_files(view: WorkspaceView, args: dict[str, Any]) -> str:
    paths = [p for p in await view.files() if _matches(p, args.get("glob"))]
    more = f"\n… and {len(paths) - MAX_LISTED} more" if len(paths) > MAX_LISTED else ""
    return "\n".join(paths[:MAX_LISTED]) + more or "(no files match)"


async def read_file(view: WorkspaceView, args: dict[str, Any]) -> str:
    path = repo_path(str(args["path"]))
    lines = (await view.read_text(path)).splitlines()
    start = max(1, int(args.get("start_line") or 1))
    end = min(len(lines), int(args.get("end_line") or len(lines)))
    return "\n".join(f"{n:>5}| {lines[n - 1]}" for n in range(start, end + 1)) or f"{path}: empty file"


async def search(view: WorkspaceView, args: dict[str, Any]) -> str:
    try:
        pattern = re.compile(str(args["pattern"]))
    except re.error as err:
        raise ToolError(f"bad regular expression: {err}") from None
    hits: list[str] = []
    for path in await view.files():
        if not _matches(path, args.get("glob")):
            continue
        data = await view.read_bytes(path)
        if data is None or b"\0" in data[:8000]:
            continue
        for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{path}:{n}: {line.strip()[:200]}")
        if len(hits) >= MAX_MATCHES:
            break
    return "\n".join(hits[:MAX_MATCHES]) or "(no matches)"


async def write_file(view: WorkspaceView, args: dict[str, Any]) -> str:
    path = repo_path(str(args["path"]))
    view.write(path, str(args["content"]))
    return f"wrote {path}"


async def str_replace(view: WorkspaceView, args: dict[str, Any]) -> str:
    path = repo_path(str(args["path"]))
    text = await view.read_text(path)
    old, new = str(args["old_str"]), str(args["new_str"])
    count = text.count(old) if old else 0
    if count != 1:
        raise ToolError(f"{path}: old_str must match exactly once; it matches {count} times")
    view.write(path, text.replace(old, new, 1))
    return f"edited {path}"


async def insert(view: WorkspaceView, args: dict[str, Any]) -> str:
    path = repo_path(str(args["path"]))
    lines = (await view.read_text(path)).splitlines(keepends=True)
    at = int(args["insert_line"])
    if not 0 <= at <= len(lines):
        raise ToolError(f"{path}: insert_line must be between 0 and {len(lines)}")
    new = str(args["new_str"])
    if lines and at == len(lines) and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    view.write(path, "".join([*lines[:at], new if new.endswith("\n") else new + "\n", *lines[at:]]))
    return f"inserted {len(new.splitlines())} line(s) into {path} after line {at}"


async def view_diff(view: WorkspaceView, args: dict[str, Any]) -> str:
    ws = view.ws
    parts = []
    if ws.origin_sha and ws.origin_sha != ws.base_sha:
        parts.append(await view.host.diff(ws.repo, ws.origin_sha, ws.base_sha))
    for path in sorted(view._overlay()):
        before = await view.host.read_file(ws.repo, ws.base_sha, path)
        after = await view.read_bytes(path)
        parts.append(_unified(path, before, after))
    return "\n".join(p for p in parts if p) or "(no changes yet)"


def _unified(path: str, before: bytes | None, after: bytes | None) -> str:
    old = (before or b"").decode("utf-8", "replace").splitlines(keepends=True)
    new = (after or b"").decode("utf-8", "replace").splitlines(keepends=True)
    src = f"a/{path}" if before is not None else "/dev/null"
    dst = f"b/{path}" if after is not None else "/dev/null"
    return "".join(difflib.unified_diff(old, new, src, dst))


Tool = Callable[[WorkspaceView, dict[str, Any]], Awaitable[str]]
TOOLS: dict[str, Tool] = {
    "list_files": list_files,
    "read_file": read_file,
    "search": search,
    "write_file": write_file,
    "str_replace": str_replace,
    "insert": insert,
    "view_diff": view_diff,
}


def _check_role_may_write(call: ToolCallInput) -> None:
    if call.role == "tester" and call.name in WRITE_TOOLS:
        path = repo_path(str(call.input.get("path", "")))
        if not is_test_path(path):
            raise ToolError(f"{path}: the tester may only write test files (tests/…, test_*.py, *.test.js, …)")


class ToolActivities:
    def __init__(self, hosts: CodeHosts, blobs: BlobStore) -> None:
        self._hosts = hosts
        self._blobs = blobs

    @activity.defn(name="run_tool")
    async def run_tool(self, call: ToolCallInput) -> ToolCallResult:
        tool = TOOLS.get(call.name)
        if tool is None:
            return ToolCallResult(tool_use_id=call.tool_use_id, content=f"unknown tool {call.name!r}", is_error=True)
        view = WorkspaceView(call.workspace, self._hosts.for_repo(call.workspace.repo), self._blobs)
        async with operation("tool", call.name) as outcome:
            try:
                _check_role_may_write(call)
                content = await tool(view, call.input)
            except (ToolError, UnsafePathError) as err:
                outcome.ok = False
                return ToolCallResult(tool_use_id=call.tool_use_id, content=str(err), is_error=True)
            except KeyError as err:
                outcome.ok = False
                return ToolCallResult(tool_use_id=call.tool_use_id, content=f"missing argument {err}", is_error=True)
            return ToolCallResult(tool_use_id=call.tool_use_id, content=_clip(content), overlay_updates=view.updates)
