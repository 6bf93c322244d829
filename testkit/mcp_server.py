"""An MCP tool server for the tests, on the official SDK: `python -m testkit.mcp_server` serves it
over stdio, `python -m testkit.mcp_server --http PORT` over streamable HTTP on 127.0.0.1.

Its tools let a test see what happened on the far side: `lookup` counts its calls in the file
named by MCP_TEST_COUNTER (so a retried or duplicated call shows), `pid` names the process (so a
test can kill it), `env` reads the server's environment (so a test can check what it inherited),
and `fail`, `die` and `sleep` end in an error, the process's end and a wait.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

COUNTER_ENV = "MCP_TEST_COUNTER"

server = MCPServer("forgeflow-test", log_level="WARNING")


@server.tool()
def lookup(word: str) -> str:
    """The dictionary definition of a word."""
    counter = os.environ.get(COUNTER_ENV)
    if counter:
        with Path(counter).open("a") as f:  # one line per call: appends are atomic enough here
            f.write(f"{word}\n")
    return f"{word}: a word of {len(word)} letters"


@server.tool()
def pid() -> int:
    """This server's process id."""
    return os.getpid()


@server.tool()
def env(name: str) -> str:
    """The value of an environment variable in this server, or `<unset>`."""
    return os.environ.get(name, "<unset>")


@server.tool()
def fail(reason: str = "asked to fail") -> str:
    """Always fails, with the reason given."""
    raise ToolError(reason)


@server.tool()
def die() -> str:
    """Ends this server's process at once, without an answer."""
    os._exit(3)


@server.tool()
async def sleep(seconds: float) -> str:
    """Answers after `seconds`."""
    await asyncio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
def big(size: int) -> str:
    """A text of `size` characters, in lines of 100."""
    line = "x" * 99 + "\n"
    return (line * (size // 100 + 1))[:size]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on 127.0.0.1:PORT")
    args = parser.parse_args()
    if args.http is None:
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=args.http)


if __name__ == "__main__":
    main()
