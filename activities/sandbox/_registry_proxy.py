"""The install step's only way out: an HTTP CONNECT proxy on a unix socket that lets through
connections to the package registries and refuses everything else.

The sandbox keeps its own empty network namespace; the socket is bound into it and
`_forwarder.py` inside turns it into a proxy on 127.0.0.1, which pip and npm reach through their
usual HTTPS_PROXY settings. Code that ignores the proxy has no network at all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection
from pathlib import Path

import structlog

from activities.sandbox._forwarder import pipe

log = structlog.get_logger(__name__)
HEAD_LIMIT = 8192


async def _reply(writer: asyncio.StreamWriter, status: str, body: str = "") -> None:
    writer.write(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}".encode())
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()


def _target(head: bytes) -> str | None:
    """`host:port` of a CONNECT request line, None for anything else."""
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
    return parts[1].lower() if len(parts) == 3 and parts[0] == "CONNECT" else None


async def _serve(allowed: Collection[str], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        writer.close()
        return
    target = _target(head)
    if target is None:
        await _reply(writer, "405 Method Not Allowed", "forgeflow sandbox: only CONNECT to a package registry\n")
        return
    if target not in allowed:
        log.warning("sandbox_network_refused", target=target)
        await _reply(writer, "403 Forbidden", f"forgeflow sandbox: {target} is not an allowed package registry\n")
        return
    host, _, port = target.rpartition(":")
    try:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
    except OSError as err:
        await _reply(writer, "502 Bad Gateway", f"forgeflow sandbox: {target}: {err}\n")
        return
    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
    up_writer.close()
    writer.close()


@contextlib.asynccontextmanager
async def registry_proxy(socket_path: Path, allowed: Collection[str]) -> AsyncIterator[Path]:
    """Serve the proxy on `socket_path` for the duration of the block."""
    allow = {a.lower() for a in allowed}
    server = await asyncio.start_unix_server(lambda r, w: _serve(allow, r, w), path=str(socket_path), limit=HEAD_LIMIT)
    try:
        yield socket_path
    finally:
        server.close()
        await server.wait_closed()
        await asyncio.to_thread(socket_path.unlink, missing_ok=True)
