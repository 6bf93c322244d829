"""Runs inside the sandbox (stdlib only): `python _forwarder.py SOCKET PORT -- COMMAND...`.

Listens on 127.0.0.1:PORT in the sandbox's own network namespace, relays each connection to the
worker's registry proxy through the unix SOCKET bound into the sandbox, runs COMMAND, and exits
with its exit code.
"""

import asyncio
import contextlib
import sys


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction of a connection until it ends (the registry proxy uses it too)."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(ConnectionError, OSError, RuntimeError):
        writer.write_eof()


async def _relay(socket_path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        up_reader, up_writer = await asyncio.open_unix_connection(socket_path)
    except OSError:
        writer.close()
        return
    try:
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
    except asyncio.CancelledError:
        pass  # the command is done and the forwarder is exiting: a kept-alive connection just ends
    finally:
        up_writer.close()
        writer.close()


async def main(socket_path: str, port: int, command: list[str]) -> int:
    server = await asyncio.start_server(lambda r, w: _relay(socket_path, r, w), "127.0.0.1", port)
    async with server:
        proc = await asyncio.create_subprocess_exec(*command)
        code = await proc.wait()
    return code if code >= 0 else 128 - code  # killed by a signal: the shell's convention


if __name__ == "__main__":
    sock, port, sep, *cmd = sys.argv[1:]
    if sep != "--" or not cmd:
        sys.exit("usage: _forwarder.py SOCKET PORT -- COMMAND...")
    sys.exit(asyncio.run(main(sock, int(port), cmd)))
