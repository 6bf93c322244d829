"""Workspace tools: each agent tool call is one run of the `run_tool` activity.

Tools see the durable workspace — a base commit on the code host plus an overlay of changed files
kept as blob keys — so any worker can serve any call, and edits are returned as overlay updates
for the workflow to record.

Everything a tool returns is bounded in lines and characters and says what it left out, and no
call can hold the worker: `search` lists the base commit once, streams its files through one blob
reader and matches in a thread with the `regex` module, each line and the whole call under a time
limit. Paths are checked once with `repo_path`; nothing is read or written through a symbolic link
committed in the repository (see `_change_rules`).
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import fnmatch
import time
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import regex
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities._heartbeat import heartbeats
from activities.blobstore import BlobNotFoundError, BlobStore
from activities.codehost.host import CodeHost, CodeHosts, TreeEntry
from contracts.agents import Workspace
from contracts.tools import WRITE_TOOLS, ToolCallInput, ToolCallResult
from policy import host_rules as rules
from policy.paths import UnsafePathError, control_character, is_test_path, repo_path
from policy.redact import is_env_file, redact, redact_env_text
from telemetry.instrument import operation

MiB = 1024 * 1024
MAX_OUTPUT = 16_000  # characters of one tool result
# Longer answers go to the blob store and travel by key (contracts.model.result_block), so workflow
# history holds each once, not twice; shorter ones (confirmations, errors) stay inline.
INLINE_RESULT_BYTES = 512
PREVIEW_CHARS = 120  # of a keyed answer, kept in its result for people reading the history
NOTES_ROOM = 1_000  # of those, kept for the lines that say what was left out
MAX_LISTED = 500
MAX_MATCHES = 200
MAX_MATCH_LINE = 200  # characters of one matching line
MAX_GLOB = 500
MAX_PATTERN = 1_000
MAX_LINK_TARGET = 1_024  # bytes of a link's target quoted to the model (PATH_MAX is 4096)
MAX_READ_BYTES = 2 * MiB  # a file read whole
MAX_RANGE_READ_BYTES = 16 * MiB  # a file read by line range, or edited
MAX_SEARCH_FILE_BYTES = 1 * MiB
MAX_DIFF_FILE_BYTES = 1 * MiB  # difflib's time grows faster than the file
BINARY_SNIFF = 8_000  # bytes looked at for a NUL, as git does
SEARCH_BATCH_BYTES = 1 * MiB  # files matched per hop to the thread


@dataclass(frozen=True)
class ToolLimits:
    """Time limits of `search`, in seconds: per line (a pattern that backtracks forever) and per call."""

    search_seconds: float = 10.0
    line_seconds: float = 1.0


class ToolError(Exception):
    """A problem the model can read and fix (bad path, no match, …), returned as is_error."""


class WorkspaceView:
    """Reads and edits on base commit + overlay."""

    def __init__(self, ws: Workspace, host: CodeHost, blobs: BlobStore, limits: ToolLimits | None = None) -> None:
        self.ws = ws
        self.host = host
        self.blobs = blobs
        self.limits = limits or ToolLimits()
        self.updates: dict[str, str | None] = {}
        self._entries: dict[str, dict[str, TreeEntry]] = {}

    def overlay(self) -> dict[str, str | None]:
        return {**self.ws.overlay, **self.updates}

    async def base_entries(self, path: str) -> dict[str, TreeEntry]:
        """The base commit's entries for `path` and the directories above it (one lookup per path)."""
        if path not in self._entries:
            found = await self.host.entries(self.ws.repo, self.ws.base_sha, rules.with_parents([path]))
            self._entries[path] = {entry.path: entry for entry in found}
        return self._entries[path]

    async def read_bytes(self, path: str, limit: int, whole: bool) -> bytes:
        """The file's bytes from the overlay, else the base commit, or a ToolError saying why not."""
        overlay = self.overlay()
        if path in overlay:
            key = overlay[path]
            if key is None:
                raise ToolError(f"{path}: no such file (this run deleted it)")
            data = await self.blobs.get_async(key)
            if len(data) > limit:
                raise ToolError(_too_big(path, len(data), limit, whole))
            return data
        entries = await self.base_entries(path)
        await self._refuse_links(path, entries, "reads")
        entry = entries.get(path)
        if entry is None:
            raise ToolError(f"{path}: no such file")
        if not entry.is_file or entry.size is None:
            kind = "submodule" if entry.mode == "160000" else "directory"
            raise ToolError(f"{path} is a {kind}, not a file")
        if entry.size > limit:
            raise ToolError(_too_big(path, entry.size, limit, whole))
        return await self.object(entry.object_id)

    async def read_text(self, path: str, limit: int = MAX_RANGE_READ_BYTES, whole: bool = False) -> str:
        data = await self.read_bytes(path, limit, whole)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"{path}: binary file; only text files can be read or edited") from None

    async def object(self, object_id: str) -> bytes:
        async with contextlib.aclosing(self.host.read_blobs(self.ws.repo, [object_id])) as blobs:
            async for blob in blobs:
                if blob.data is not None:
                    return blob.data
        raise ApplicationError(f"object {object_id} listed in {self.ws.base_sha} could not be read", type="GitError")

    async def check_write(self, path: str) -> str:
        """A note for the model about the write, or a ToolError for a path under a link."""
        entries = await self.base_entries(path)
        await self._refuse_links(path, entries, "writes")
        entry = entries.get(path)
        if entry is None or not entry.is_link:
            return ""
        return (
            f"\nnote: {await self._link(entry)}; this replaces the link with a regular file, "
            "and committing that needs a maintainer's approval"
        )

    async def _refuse_links(self, path: str, entries: dict[str, TreeEntry], verb: str) -> None:
        link = rules.link_above(path, {found.path: found.mode for found in entries.values()})
        if link is not None:
            raise ToolError(f"{await self._link(entries[link])}; forgeflow {verb} no file through a link")
        entry = entries.get(path)
        if verb == "reads" and entry is not None and entry.is_link:
            raise ToolError(
                f"{await self._link(entry)}; forgeflow does not follow links "
                "(write_file replaces it with a regular file, which needs a maintainer's approval)"
            )

    async def _link(self, entry: TreeEntry) -> str:
        """'<path> is a symbolic link in the repository (-> <target>)', the target bounded and printable."""
        if entry.size is None or entry.size > MAX_LINK_TARGET:
            target = f"a target of {entry.size} bytes"
        else:
            text = (await self.object(entry.object_id)).decode("utf-8", "replace")
            target = "".join("\ufffd" if unicodedata.category(ch) == "Cc" else ch for ch in text)
        return f"{entry.path} is a symbolic link in the repository (-> {target})"

    async def files(self) -> list[str]:
        base = set(await self.host.list_files(self.ws.repo, self.ws.base_sha))
        for path, key in self.overlay().items():
            if key is None:
                base.discard(path)
            else:
                base.add(path)
        return sorted(base)

    async def write(self, path: str, text: str) -> None:
        self.updates[path] = await self.blobs.put_async(text.encode("utf-8"))


def _too_big(path: str, size: int, limit: int, whole: bool) -> str:
    said = f"{path} is {size / MiB:.1f} MiB ({size} bytes), over the {limit // MiB} MiB"
    if whole:
        return f"{said} read_file returns whole; read a line range (start_line, end_line), or search it"
    return f"{said} forgeflow reads or edits; search it, or ask a human about this file"


# --- arguments ------------------------------------------------------------------------------


def _int(args: dict[str, Any], name: str) -> int | None:
    value = args.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ToolError(f"{name} must be an integer, not {str(value)[:40]!r}") from None


def _glob(args: dict[str, Any]) -> str | None:
    """The optional glob, checked like a path: printable and of a reasonable length."""
    glob = args.get("glob")
    if glob is None or glob == "":
        return None
    text = str(glob)
    if len(text) > MAX_GLOB:
        raise ToolError(f"glob is longer than {MAX_GLOB} characters")
    bad = control_character(text)
    if bad is not None:
        raise ToolError(f"glob contains the control character U+{ord(bad):04X}; globs are printable text only")
    return text


def _matches(path: str, glob: str | None) -> bool:
    return glob is None or fnmatch.fnmatch(path, glob) or fnmatch.fnmatch(path.rsplit("/", 1)[-1], glob)


def _bounded(lines: Sequence[str], count: int, noun: str, hint: str = "") -> list[str]:
    """At most `count` whole lines that fit the output, then one line saying how many were left out."""
    shown: list[str] = []
    used = 0
    for line in lines[:count]:
        if used + len(line) + 1 > MAX_OUTPUT - NOTES_ROOM:
            break
        shown.append(line)
        used += len(line) + 1
    if len(shown) < len(lines):
        shown.append(f"… {len(lines) - len(shown)} more {noun} not shown{hint}")
    return shown


def _clip(text: str) -> str:
    """The last bound, for any tool: each tool bounds its own output more usefully first."""
    if len(text) <= MAX_OUTPUT:
        return text
    return text[:MAX_OUTPUT] + f"\n… [{len(text) - MAX_OUTPUT} more characters cut]"


# --- reading tools --------------------------------------------------------------------------


async def list_files(view: WorkspaceView, args: dict[str, Any]) -> str:
    glob = _glob(args)
    paths = [p for p in await view.files() if _matches(p, glob)]
    return "\n".join(_bounded(paths, MAX_LISTED, "files", "; narrow the glob")) or "(no files match)"


async def read_file(view: WorkspaceView, args: dict[str, Any]) -> str:
    path = repo_path(str(args["path"]))
    start, end = _int(args, "start_line"), _int(args, "end_line")
    whole = start is None and end is None
    lines = _shown(
        path, await view.read_text(path, MAX_READ_BYTES if whole else MAX_RANGE_READ_BYTES, whole)
    ).splitlines()
    if not lines:
        return f"{path}: empty file"
    first, last = max(1, start or 1), min(len(lines), end or len(lines))
    if first > last:
        return f"{path}: no lines {first} to {end or last}; the file has {len(lines)} lines"
    return _numbered(lines, first, last)


def _numbered(lines: list[str], first: int, last: int) -> str:
    """Lines first..last with their numbers, cut at a line boundary where the output is full."""
    out: list[str] = []
    used, budget = 0, MAX_OUTPUT - NOTES_ROOM
    number = first
    while number <= last:
        row = f"{number:>5}| {lines[number - 1]}"
        if used + len(row) + 1 > budget:
            if not out:  # one line longer than the whole output: its start is better than nothing
                out.append(f"{row[:budget]} … [{len(row) - budget} more characters of line {number} cut]")
                number += 1
            break
        out.append(row)
        used += len(row) + 1
        number += 1
    if number <= last:
        cut = f"… lines {number} to {last} not shown ({MAX_OUTPUT}-character limit)"
        out.append(f"{cut}; read on with start_line={number}")
    return "\n".join(out)


@dataclass
class _Scan:
    """One search's state, filled in a worker thread: matches, and what was skipped or stopped."""

    pattern: Any  # a compiled regex.Pattern, matched line by line
    whole: Any  # the same over a whole file (see _prefilter), or None
    deadline: float
    line_seconds: float
    hits: list[str] = field(default_factory=list)
    slow: list[str] = field(default_factory=list)  # path:line where the pattern ran out of time
    files: int = 0
    binary: int = 0
    too_big: int = 0
    out_of_time: bool = False

    @property
    def stopped(self) -> bool:
        return self.out_of_time or len(self.hits) >= MAX_MATCHES

    def scan(self, files: list[tuple[str, bytes]]) -> None:
        for path, data in files:
            if self.stopped:
                return
            self.files += 1
            if b"\0" in data[:BINARY_SNIFF]:
                self.binary += 1
                continue
            self._scan_text(path, data.decode("utf-8", "replace"))

    def _scan_text(self, path: str, text: str) -> None:
        lines = _shown(path, text).splitlines()  # a secret's value can't be found, so can't be probed for
        if self.whole is not None and not self._may_match("\n".join(lines)):
            return
        for number, line in enumerate(lines, 1):
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.out_of_time = True
                return
            try:
                # concurrent=True releases the GIL, so the event loop keeps running beside it.
                found = self.pattern.search(line, timeout=min(self.line_seconds, left), concurrent=True)
            except TimeoutError:
                self.slow.append(f"{path}:{number}")
                continue
            if found:
                shown = line.strip()
                if len(shown) > MAX_MATCH_LINE:
                    shown = f"{shown[:MAX_MATCH_LINE]} … [{len(shown) - MAX_MATCH_LINE} more characters]"
                self.hits.append(f"{path}:{number}: {shown}")
                if len(self.hits) >= MAX_MATCHES:
                    return

    def _may_match(self, joined: str) -> bool:
        """One search over the whole file, so that most files cost one call instead of one per line."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.out_of_time = True
            return False
        try:
            return self.whole.search(joined, timeout=min(self.line_seconds, left), concurrent=True) is not None
        except TimeoutError:
            return True  # the lines decide, each under its own limit


# Constructs whose match on a line alone can fail on the same line inside its file: lookarounds,
# atomic groups and inline flags (all spelled "(?"), possessive quantifiers, and string anchors.
_LINE_ONLY = ("(?", "++", "*+", "?+", "}+", "\\A", "\\Z", "\\z", "\\G")


def _compile(args: dict[str, Any]) -> tuple[Any, Any]:
    """The pattern per line, and per file when that finds every file with a matching line (else None).

    Over a file's lines joined by newlines in MULTILINE mode, ^, $, \\b and every other construct
    outside `_LINE_ONLY` match wherever they match on a line alone; extra matches across lines are
    harmless, since the lines are then searched one by one."""
    pattern = str(args["pattern"])
    if len(pattern) > MAX_PATTERN:
        raise ToolError(f"pattern is longer than {MAX_PATTERN} characters; search for a distinctive part")
    try:
        by_line = regex.compile(pattern)
        whole = None if any(part in pattern for part in _LINE_ONLY) else regex.compile(pattern, regex.MULTILINE)
    except (regex.error, RecursionError, OverflowError) as err:
        raise ToolError(f"bad regular expression: {err}") from None
    return by_line, whole


async def search(view: WorkspaceView, args: dict[str, Any]) -> str:
    (by_line, whole), glob = _compile(args), _glob(args)
    found = _Scan(by_line, whole, time.monotonic() + view.limits.search_seconds, view.limits.line_seconds)
    overlay = view.overlay()
    edited = {path: key for path, key in sorted(overlay.items()) if key and _matches(path, glob)}
    contents = await view.blobs.get_many_async(edited.values())
    mine = [(path, contents[key]) for path, key in edited.items()]
    base = [e for e in await view.host.tree(view.ws.repo, view.ws.base_sha) if e.path not in overlay]
    candidates = [e for e in base if e.is_file and _matches(e.path, glob)]
    readable = [e for e in candidates if (e.size or 0) <= MAX_SEARCH_FILE_BYTES]
    small = [(path, data) for path, data in mine if len(data) <= MAX_SEARCH_FILE_BYTES]
    found.too_big = len(candidates) - len(readable) + len(mine) - len(small)
    if small:  # the run's own edits first (a thread only for work: each hop waits on a busy loop)
        await asyncio.to_thread(found.scan, small)
    if not found.stopped:
        await _scan_base(view, readable, found)
    return _search_report(view.limits, found, len(small) + len(readable))


async def _scan_base(view: WorkspaceView, entries: list[TreeEntry], found: _Scan) -> None:
    """Stream the base commit's files through one reader, matching a batch at a time in a thread."""
    batch: list[tuple[str, bytes]] = []
    size = 0
    reader = view.host.read_blobs(view.ws.repo, [entry.object_id for entry in entries])
    async with contextlib.aclosing(reader) as blobs:
        index = 0
        async for blob in blobs:
            entry, index = entries[index], index + 1
            if blob.data is not None:
                batch.append((entry.path, blob.data))
                size += len(blob.data)
            if size >= SEARCH_BATCH_BYTES or time.monotonic() >= found.deadline:
                await asyncio.to_thread(found.scan, batch)
                batch, size = [], 0
                found.out_of_time |= time.monotonic() >= found.deadline  # reading counts against the budget too
                if found.stopped:
                    return
        if batch:
            await asyncio.to_thread(found.scan, batch)


def _search_report(limits: ToolLimits, found: _Scan, total: int) -> str:
    lines = _bounded(found.hits, MAX_MATCHES, "matches", "; narrow the glob or the pattern") or ["(no matches)"]
    if len(found.hits) >= MAX_MATCHES:
        lines.append(
            f"… search stopped at the cap of {MAX_MATCHES} matches after {found.files} of {total} files; "
            "narrow the glob or the pattern to see the rest"
        )
    if found.binary or found.too_big:
        lines.append(
            f"(skipped {found.binary} binary file(s) and {found.too_big} file(s) "
            f"over {MAX_SEARCH_FILE_BYTES // MiB} MiB)"
        )
    if found.slow:
        listed = ", ".join(found.slow[:5]) + (", …" if len(found.slow) > 5 else "")
        lines.append(
            f"the pattern took over {limits.line_seconds:g} s on {len(found.slow)} line(s), "
            f"which were not searched: {listed}"
        )
    if found.out_of_time:
        lines.append(
            f"search stopped at the time limit ({limits.search_seconds:g} s) after {found.files} of {total} files; "
            "try a narrower glob or a simpler pattern"
        )
    return "\n".join(lines)


# --- writing tools --------------------------------------------------------------------------


async def write_file(view: WorkspaceView, args: dict[str, Any]) -> str:
    path = repo_path(str(args["path"]))
    note = await view.check_write(path)
    await view.write(path, str(args["content"]))
    return f"wrote {path}{note}"


def _shown(path: str, text: str) -> str:
    """A file's text as a model may read it: a dotenv file's values hidden (`KEY=[redacted]`)."""
    return redact_env_text(text) if is_env_file(path) else text


def _no_edit_in_place(path: str) -> None:
    """A dotenv file is shown without its values, and a match count would tell them: no edits in place."""
    if is_env_file(path):
        raise ToolError(
            f"{path} holds secrets, which are hidden from you: it can't be edited in place. write_file replaces "
            "it whole (a maintainer approves any change to it), or leave it to a human"
        )


async def str_replace(view: WorkspaceView, args: dict[str, Any]) -> str:
    path = repo_path(str(args["path"]))
    _no_edit_in_place(path)
    note = await view.check_write(path)
    text = await view.read_text(path)
    old, new = str(args["old_str"]), str(args["new_str"])
    count = text.count(old) if old else 0
    if count != 1:
        raise ToolError(f"{path}: old_str must match exactly once; it matches {count} times")
    await view.write(path, text.replace(old, new, 1))
    return f"edited {path}{note}"


async def insert(view: WorkspaceView, args: dict[str, Any]) -> str:
    path = repo_path(str(args["path"]))
    _no_edit_in_place(path)
    note = await view.check_write(path)
    at = _int(args, "insert_line")
    if at is None:
        raise ToolError("insert_line is required")
    lines = (await view.read_text(path)).splitlines(keepends=True)
    if not 0 <= at <= len(lines):
        raise ToolError(f"{path}: insert_line must be between 0 and {len(lines)}")
    new = str(args["new_str"])
    if lines and at == len(lines) and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    await view.write(path, "".join([*lines[:at], new if new.endswith("\n") else new + "\n", *lines[at:]]))
    return f"inserted {len(new.splitlines())} line(s) into {path} after line {at}{note}"


# --- view_diff ------------------------------------------------------------------------------


async def view_diff(view: WorkspaceView, args: dict[str, Any]) -> str:
    ws = view.ws
    parts: list[tuple[str, str]] = []
    if ws.origin_sha and ws.origin_sha != ws.base_sha:
        parts.append(("the earlier rounds' commits", await view.host.diff(ws.repo, ws.origin_sha, ws.base_sha)))
    for path, key in sorted(view.overlay().items()):
        before = await view.host.read_file(ws.repo, ws.base_sha, path)
        after = None if key is None else await view.blobs.get_async(key)
        before, after = (
            None if b is None else _shown(path, b.decode("utf-8", "replace")).encode() for b in (before, after)
        )
        parts.append((path, await asyncio.to_thread(_unified, path, before, after)))
    return _joined(parts) or "(no changes yet)"


def _unified(path: str, before: bytes | None, after: bytes | None) -> str:
    if max(len(before or b""), len(after or b"")) > MAX_DIFF_FILE_BYTES:
        sizes = f"{len(before) if before is not None else 'no file'} → {len(after) if after is not None else 'deleted'}"
        return f"{path}: changed ({sizes} bytes); too large to show as a diff, read_file shows its lines\n"
    old = (before or b"").decode("utf-8", "replace").splitlines(keepends=True)
    new = (after or b"").decode("utf-8", "replace").splitlines(keepends=True)
    src = f"a/{path}" if before is not None else "/dev/null"
    dst = f"b/{path}" if after is not None else "/dev/null"
    return "".join(difflib.unified_diff(old, new, src, dst))


def _joined(parts: list[tuple[str, str]]) -> str:
    """Whole diffs while they fit; then the start of the next, and the names of the files not shown."""
    out: list[str] = []
    used, budget = 0, MAX_OUTPUT - NOTES_ROOM
    shown = [(label, text) for label, text in parts if text]
    for n, (label, text) in enumerate(shown):
        if used + len(text) > budget:
            room = budget - used
            out.append(f"{text[:room]}\n… [diff of {label} cut: {len(text) - room} more characters]")
            rest = [name for name, _ in shown[n + 1 :]]
            if rest:
                more = f" and {len(rest) - 10} more" if len(rest) > 10 else ""
                out.append(f"… diffs not shown for {len(rest)} more file(s): {', '.join(rest[:10])}{more}")
            break
        out.append(text)
        used += len(text)
    return "\n".join(out)


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
    tests_only = call.role == "tester" if call.tests_only is None else call.tests_only
    if tests_only and call.name in WRITE_TOOLS:
        path = repo_path(str(call.input.get("path", "")))
        if not is_test_path(path):
            raise ToolError(f"{path}: the {call.role} may only write test files (tests/…, test_*.py, *.test.js, …)")


class ToolActivities:
    def __init__(self, hosts: CodeHosts, blobs: BlobStore, limits: ToolLimits | None = None) -> None:
        self._hosts = hosts
        self._blobs = blobs
        self._limits = limits or ToolLimits()

    @activity.defn(name="run_tool")
    @heartbeats  # a search or a first read of a commit (an archive download) can take seconds
    async def run_tool(self, call: ToolCallInput) -> ToolCallResult:
        return await self.answer(call)

    async def answer(self, call: ToolCallInput, *, by_key: bool = True) -> ToolCallResult:
        """The tool's answer; `by_key`: one longer than INLINE_RESULT_BYTES goes to the blob store and
        travels by key (as an activity's result must), else it is whole in `content` (a model turn that
        puts it in its transcript, which is stored whole anyway)."""
        tool = TOOLS.get(call.name)
        if tool is None:
            return ToolCallResult(tool_use_id=call.tool_use_id, content=f"unknown tool {call.name!r}", is_error=True)
        host = self._hosts.for_repo(call.workspace.repo)
        view = WorkspaceView(call.workspace, host, self._blobs, self._limits)
        async with operation("tool", call.name) as outcome:
            try:
                _check_role_may_write(call)
                content = await tool(view, call.input)
            except (ToolError, UnsafePathError) as err:
                outcome.ok = False
                return ToolCallResult(tool_use_id=call.tool_use_id, content=str(err), is_error=True)
            except BlobNotFoundError as err:  # a KeyError, but retryable: another worker may share the store
                raise ApplicationError(str(err), type="BlobNotFound") from err
            except KeyError as err:
                outcome.ok = False
                return ToolCallResult(tool_use_id=call.tool_use_id, content=f"missing argument {err}", is_error=True)
            # Token-shaped strings go here already, so they are not in history either (the model turn
            # takes out the worker's own secrets and these shapes again).
            return await self._answer(call, redact(_clip(content)), view.updates, by_key=by_key)

    async def _answer(
        self, call: ToolCallInput, content: str, updates: dict[str, str | None], *, by_key: bool
    ) -> ToolCallResult:
        """The result; with `by_key`, an answer longer than INLINE_RESULT_BYTES goes to the blob store, and
        travels by key."""
        if not by_key or len(data := content.encode("utf-8", "surrogatepass")) <= INLINE_RESULT_BYTES:
            return ToolCallResult(tool_use_id=call.tool_use_id, content=content, overlay_updates=updates)
        key = await self._blobs.put_async(data)
        preview = f"{content[:PREVIEW_CHARS]} … [{len(data)} bytes in all, by key]"
        return ToolCallResult(tool_use_id=call.tool_use_id, content=preview, content_key=key, overlay_updates=updates)
