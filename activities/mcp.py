"""MCP tool servers the operator configured: one live session per server per worker process, opened
on first use and opened again when its server died; one activity per tool call.

The SDK's transports are anyio task groups and cancel scopes, which must be left by the task that
entered them, so each session lives in a task of its own that enters the SDK's `Client` and holds it
until the session is closed; callers of every activity use the open client from their own tasks.
A call whose session broke (the process exited, the connection dropped) is sent once more on a new
session: MCP tools should tolerate that, as the spec's own retry advice assumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import anyio
import httpx2
import structlog
from mcp import Client, types
from mcp.client import Transport
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities._heartbeat import heartbeats
from contracts.mcp import (
    TOOL_NAME,
    McpCallInput,
    McpCallResult,
    McpServerConfig,
    McpTool,
    McpToolsInput,
    McpToolsResult,
    parse_qualified,
    qualified,
)
from policy.mcp import server_environment
from policy.redact import redact, secret_values
from policy.untrusted import bound
from telemetry.instrument import operation

MAX_RESULT = 16_000  # characters of one answer the model reads
MAX_DESCRIPTION = 4_000  # characters of one tool's description: it is in every turn's prompt
MAX_PAGES = 50  # of a server's tools/list: a paginator that never ends cannot hang a worker
CLOSE_TIMEOUT = 10.0  # seconds; the SDK bounds a stdio server's shutdown at about 6 s itself

# ApplicationError types the workflow may see; all retryable (Temporal's policy caps the attempts).
SERVER_UNAVAILABLE = "McpServerUnavailable"  # could not be started or reached, or not configured here
SERVER_DIED = "McpServerDied"  # broke again on the session opened after it broke
TIMEOUT = "McpTimeout"

_log = structlog.get_logger(__name__)
T = TypeVar("T")


class _Session:
    """One open session with one server, held by a task of its own until `close`."""

    def __init__(self, server: McpServerConfig, worker_env: Mapping[str, str]) -> None:
        self.server = server
        self._worker_env = worker_env
        self._scope = anyio.CancelScope()
        self._task: asyncio.Task[None] | None = None
        self._client: Client | None = None
        self._tools: list[types.Tool] | None = None

    @property
    def alive(self) -> bool:
        return self._client is not None and self._task is not None and not self._task.done()

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError(f"MCP server {self.server.name!r}: session not open")
        return self._client

    async def open(self) -> None:
        """Start the server (stdio) or connect to it (HTTP), and complete the protocol's handshake."""
        ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        # A context of its own: the task outlives the activity that opened it, whose span and
        # activity info must not become every later call's.
        self._task = asyncio.create_task(
            self._hold(ready), name=f"mcp server {self.server.name}", context=contextvars.Context()
        )
        try:
            self._client = await ready
        except BaseException:
            await self.close()
            raise

    async def _hold(self, ready: asyncio.Future[Client]) -> None:
        try:
            with self._scope:
                async with contextlib.AsyncExitStack() as stack:
                    client = await stack.enter_async_context(Client(await self._target(stack), cache=None))
                    ready.set_result(client)
                    await anyio.sleep_forever()
        except Exception as err:
            if not ready.done():
                ready.set_exception(err)
            else:
                _log.warning("mcp session ended", server=self.server.name, error=_describe(err))
        finally:
            if not ready.done():
                ready.set_exception(ConnectionError("closed before the session opened"))
            self._client = None

    async def _target(self, stack: contextlib.AsyncExitStack) -> StdioServerParameters | Transport:
        server = self.server
        if server.command is not None:
            env = server_environment(server, self._worker_env)
            return StdioServerParameters(command=server.command[0], args=server.command[1:], env=env)
        assert server.url is not None  # the config holds exactly one of command and url
        http = None
        if server.headers:  # else the SDK builds its own client, with the same timeouts
            http = await stack.enter_async_context(
                httpx2.AsyncClient(headers=server.headers, timeout=httpx2.Timeout(30.0, read=300.0))
            )
        return streamable_http_client(server.url, http_client=http)

    async def tools(self) -> list[types.Tool]:
        """Every tool the server lists, fetched once per session."""
        if self._tools is None:
            listed: list[types.Tool] = []
            cursor: str | None = None
            for _ in range(MAX_PAGES):
                page = await self.client.list_tools(cursor=cursor)
                listed += page.tools
                cursor = page.next_cursor
                if cursor is None:
                    break
            self._tools = listed
        return self._tools

    async def close(self) -> None:
        """End the session; a stdio server's process is gone when this returns (the SDK closes its
        stdin, then terminates and kills its process group)."""
        self._scope.cancel()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), CLOSE_TIMEOUT)
            except TimeoutError:
                self._task.cancel()
                _log.warning("mcp session did not close in time", server=self.server.name)


class McpServers:
    """The operator's MCP servers on this worker: each one's session opened on first use (once,
    however many calls arrive together) and kept open; opened again when its server died."""

    def __init__(self, servers: Sequence[McpServerConfig], worker_env: Mapping[str, str] | None = None) -> None:
        self._servers = {server.name: server for server in servers}
        if len(self._servers) != len(servers):
            raise ValueError("MCP server names must be unique")
        self._worker_env = dict(os.environ if worker_env is None else worker_env)
        self._locks = {name: asyncio.Lock() for name in self._servers}
        self._sessions: dict[str, _Session] = {}
        self._secrets = {server.name: _secrets_of(server) for server in servers}
        self.starts: Counter[str] = Counter()  # sessions opened, by server: 1 until one died
        self._closed = False

    @property
    def configs(self) -> list[McpServerConfig]:
        return list(self._servers.values())

    def offered_to(self, role: str) -> list[McpServerConfig]:
        return [server for server in self._servers.values() if role in server.roles]

    async def tools_for(self, role: str) -> list[McpTool]:
        """The tools of every server that offers tools to `role`, as the model sees them. A server
        that cannot be started or reached fails the whole list (ApplicationError, retryable)."""
        servers = self.offered_to(role)
        listed = await asyncio.gather(*(self._tools_of(server) for server in servers), return_exceptions=True)
        tools: list[McpTool] = []
        for server, found in zip(servers, listed, strict=True):
            if isinstance(found, BaseException):
                raise found
            tools += (_offered(server, tool) for tool in found if server.offers(role, tool.name))
        return [tool for tool in tools if _nameable(tool)]

    async def _tools_of(self, server: McpServerConfig) -> list[types.Tool]:
        try:
            async with asyncio.timeout(server.timeout_seconds):
                return await self._on_session(server, lambda session: session.tools())
        except TimeoutError:
            raise _timeout(f"MCP server {server.name!r} did not list its tools", server.timeout_seconds) from None
        except (MCPError, ValidationError) as err:  # the server answered, with an error or nonsense
            raise ApplicationError(
                f"MCP server {server.name!r} could not list its tools: {_describe(err)}", type=SERVER_UNAVAILABLE
            ) from err

    async def call(
        self, role: str, name: str, arguments: dict[str, Any], timeout_seconds: float | None = None
    ) -> McpCallResult:
        """Call the tool the model named `name` (`mcp__<server>__<tool>`) for `role`. The tool's own
        failure, and a tool the role is not offered, are error results for the model to read; a
        server that cannot be reached, or does not answer within `timeout_seconds` (default: its
        configured timeout, starting it included), is an ApplicationError (retryable)."""
        parsed = parse_qualified(name)
        server = self._servers.get(parsed[0]) if parsed else None
        if parsed is None or server is None or not server.offers(role, parsed[1]):
            return McpCallResult(content=f"unknown tool {name!r}: not one the {role} is offered", is_error=True)
        tool = parsed[1]
        limit = server.timeout_seconds if timeout_seconds is None else timeout_seconds
        try:
            async with asyncio.timeout(limit):
                result = await self._on_session(server, lambda session: session.client.call_tool(tool, arguments))
        except TimeoutError:
            raise _timeout(f"MCP tool {name!r} did not answer", limit) from None
        except (MCPError, ValidationError) as err:  # the server refused the call, or answered nonsense
            return McpCallResult(content=self._clean(server, f"{name} failed: {_describe(err)}"), is_error=True)
        return McpCallResult(content=self._clean(server, _text(result)), is_error=result.is_error)

    def _clean(self, server: McpServerConfig, text: str) -> str:
        """Bounded, and without the credentials the operator gave the server (it may echo them)."""
        return bound(redact(text, self._secrets[server.name]), MAX_RESULT)

    async def _on_session(self, server: McpServerConfig, work: Callable[[_Session], Awaitable[T]]) -> T:
        """`work` on the server's session; if that session broke, once more on a new one."""
        session = await self._session(server)
        try:
            return await work(session)
        except Exception as err:
            if not _broken(err, session):
                raise
            _log.warning("mcp server stopped: restarting it", server=server.name, error=_describe(err))
        session = await self._session(server, replacing=session)
        try:
            return await work(session)
        except Exception as err:
            if not _broken(err, session):
                raise
            raise ApplicationError(
                f"MCP server {server.name!r} stopped again after a restart: {_describe(err)}", type=SERVER_DIED
            ) from err

    async def _session(self, server: McpServerConfig, replacing: _Session | None = None) -> _Session:
        """The server's open session, opened now if it has none, it died, or it is `replacing`
        (unless another call replaced that one already)."""
        async with self._locks[server.name]:
            if self._closed:
                raise ApplicationError("MCP servers of this worker are shut down", type=SERVER_UNAVAILABLE)
            session = self._sessions.get(server.name)
            if session is not None and session is not replacing and session.alive:
                return session
            if session is not None:
                del self._sessions[server.name]
                await session.close()
            session = _Session(server, self._worker_env)
            try:
                await session.open()
            except Exception as err:
                how = "started" if server.command is not None else "reached"
                raise ApplicationError(
                    f"MCP server {server.name!r} could not be {how}: {_describe(err)}", type=SERVER_UNAVAILABLE
                ) from err
            self._sessions[server.name] = session
            self.starts[server.name] += 1
            _log.info("mcp server started", server=server.name, starts=self.starts[server.name])
            return session

    async def close(self) -> None:
        """Close every session (stdio servers' processes are gone when this returns); no more open."""
        self._closed = True
        await asyncio.gather(*(self._close_session(name) for name in self._servers))

    async def _close_session(self, name: str) -> None:
        async with self._locks[name]:  # after a start under way: the session it opens is closed too
            session = self._sessions.pop(name, None)
            if session is not None:
                await session.close()


class McpActivities:
    """The MCP tools as activities: one call is one activity, in its span, heartbeating (a tool may
    take minutes, and a lost worker must be noticed sooner)."""

    def __init__(self, servers: McpServers) -> None:
        self._servers = servers

    @activity.defn
    @heartbeats
    async def list_mcp_tools(self, req: McpToolsInput) -> McpToolsResult:
        return McpToolsResult(tools=await self._servers.tools_for(req.role))

    @activity.defn
    @heartbeats
    async def call_mcp_tool(self, req: McpCallInput) -> McpCallResult:
        server = (parse_qualified(req.name) or ("", ""))[0]
        async with operation("mcp", req.name, {"forgeflow.mcp.server": server}) as outcome:
            result = await self._servers.call(req.role, req.name, req.input)
            outcome.ok = not result.is_error
            return result


def _broken(err: Exception, session: _Session) -> bool:
    """Whether `err` means the session is gone (so a new one may succeed), not that its server refused."""
    if isinstance(err, MCPError):
        return err.code == types.CONNECTION_CLOSED
    if isinstance(err, ValidationError):
        return False
    return not session.alive or isinstance(
        err, anyio.ClosedResourceError | anyio.BrokenResourceError | anyio.EndOfStream | OSError | httpx2.TransportError
    )


def _offered(server: McpServerConfig, tool: types.Tool) -> McpTool:
    return McpTool(
        name=qualified(server.name, tool.name),
        description=bound(tool.description or "", MAX_DESCRIPTION),
        input_schema=tool.input_schema,
        timeout_seconds=server.timeout_seconds,
    )


def _nameable(tool: McpTool) -> bool:
    if TOOL_NAME.fullmatch(tool.name):
        return True
    _log.warning("mcp tool not offered: its name is not one the model API accepts", tool=tool.name)
    return False


def _text(result: types.CallToolResult) -> str:
    """A tool's answer as text: its text blocks; other blocks named, not shown."""
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, types.TextContent):
            parts.append(block.text)
        elif isinstance(block, types.EmbeddedResource) and isinstance(block.resource, types.TextResourceContents):
            parts.append(block.resource.text)
        elif isinstance(block, types.ResourceLink):
            parts.append(f"[resource {block.uri}]")
        else:
            parts.append(f"[{block.type} content not shown]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content))
    return "\n".join(parts)


def _secrets_of(server: McpServerConfig) -> list[str]:
    """What the operator gave the server that may be a credential: its secret-named variables and headers."""
    return secret_values(server.env, server.headers.values())


def _describe(err: BaseException) -> str:
    """One line for an error, through the exception groups anyio wraps single errors in."""
    while isinstance(err, BaseExceptionGroup) and len(err.exceptions) == 1:
        err = err.exceptions[0]
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def _timeout(what: str, seconds: float) -> ApplicationError:
    return ApplicationError(f"{what} within {seconds:g} s", type=TIMEOUT)
