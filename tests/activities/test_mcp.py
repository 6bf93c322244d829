"""MCP tool servers through the official SDK, against real server processes (testkit/mcp_server.py)
over stdio and streamable HTTP: the tools a role sees, calls, a server killed mid-run and started
again, one process however many first calls arrive together, and no worker secret in its environment."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.mcp import MAX_RESULT, SERVER_DIED, SERVER_UNAVAILABLE, TIMEOUT, McpActivities, McpServers
from contracts.mcp import McpCallInput, McpServerConfig, McpToolsInput
from policy.redact import REDACTED

ROOT = Path(__file__).resolve().parents[2]
SERVER = [sys.executable, "-m", "testkit.mcp_server"]


def stdio(name: str, counter: Path, **fields: Any) -> McpServerConfig:
    env = {"PYTHONPATH": str(ROOT), "MCP_TEST_COUNTER": str(counter), **fields.pop("env", {})}
    return McpServerConfig.model_validate({"name": name, "command": SERVER, "env": env, "roles": ["coder"], **fields})


async def pid_of(servers: McpServers, name: str = "dict", role: str = "coder") -> int:
    result = await servers.call(role, f"mcp__{name}__pid", {})
    assert not result.is_error, result.content
    return int(result.content)


def server_processes() -> set[int]:
    """This process's children that run the test server (stdio; the HTTP ones run with --http)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue  # ended while we looked
        if ppid == os.getpid() and b"testkit.mcp_server" in argv and b"--http" not in argv:
            found.add(int(stat.parent.name))
    return found


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def wait_gone(pid: int) -> None:
    for _ in range(200):
        if gone(pid):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"process {pid} is still alive")


async def closed(servers: McpServers, *pids: int) -> None:
    """Close the servers: the processes they started (`pids`) are gone when close() returns."""
    await servers.close()
    assert not [pid for pid in pids if pid and not gone(pid)]  # 0: the test failed before it learnt one


@pytest_asyncio.fixture(scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[McpServers, Path]]:
    """Two servers for the tests that change nothing: `dict` (all tools, for the coder and the
    reviewer) and `limited` (lookup only, for the tester)."""
    counter = tmp_path_factory.mktemp("mcp") / "calls"
    servers = McpServers(
        [
            stdio("dict", counter, roles=["coder", "reviewer"], env={"DICT_TOKEN": "tok-0123456789abcdef"}),
            stdio("limited", counter, roles=["tester"], tools=["lookup"], timeout_seconds=30),
        ]
    )
    yield servers, counter
    started = server_processes()  # the other tests closed theirs: these are this fixture's
    assert len(started) == len(servers.starts)  # one process per server its tests used
    await closed(servers, *started)


async def test_a_role_sees_the_tools_of_the_servers_that_name_it(shared: tuple[McpServers, Path]) -> None:
    servers, _ = shared
    coder = {tool.name: tool for tool in await servers.tools_for("coder")}
    assert {"mcp__dict__lookup", "mcp__dict__pid", "mcp__dict__fail", "mcp__dict__env"} <= set(coder)
    lookup = coder["mcp__dict__lookup"]
    assert lookup.description == "The dictionary definition of a word."
    assert lookup.input_schema["properties"]["word"]["type"] == "string"
    assert lookup.input_schema["required"] == ["word"]
    assert lookup.timeout_seconds == 60

    tester = await servers.tools_for("tester")
    assert [(tool.name, tool.timeout_seconds) for tool in tester] == [("mcp__limited__lookup", 30)]
    assert await servers.tools_for("planner") == []


async def test_a_call_answers_and_a_tool_not_offered_is_an_error_result(shared: tuple[McpServers, Path]) -> None:
    servers, counter = shared
    answer = await servers.call("coder", "mcp__dict__lookup", {"word": "durable"})
    assert (answer.content, answer.is_error) == ("durable: a word of 7 letters", False)
    assert counter.read_text().splitlines().count("durable") == 1

    failed = await servers.call("coder", "mcp__dict__fail", {"reason": "no such word"})
    assert failed.is_error and failed.content.endswith("no such word")
    bad_arguments = await servers.call("coder", "mcp__dict__lookup", {"wrd": "x"})
    assert bad_arguments.is_error and "word" in bad_arguments.content

    for role, name in [
        ("tester", "mcp__limited__pid"),  # not in the server's allowlist
        ("planner", "mcp__dict__lookup"),  # a role the server does not name
        ("coder", "mcp__nowhere__lookup"),  # no such server
        ("coder", "read_file"),  # not an MCP tool at all
    ]:
        refused = await servers.call(role, name, {})
        assert refused.is_error and "not one the" in refused.content, (role, name)
    unknown = await servers.call("coder", "mcp__dict__nope", {})  # offered (all tools), but the server has none
    assert unknown.is_error and "nope" in unknown.content


async def test_answers_are_bounded_and_hide_the_servers_credentials(shared: tuple[McpServers, Path]) -> None:
    servers, _ = shared
    big = await servers.call("coder", "mcp__dict__big", {"size": 50_000})
    assert len(big.content) < MAX_RESULT + 100
    assert big.content.endswith(f"[{50_000 - MAX_RESULT} more characters not shown]")
    token = await servers.call("coder", "mcp__dict__env", {"name": "DICT_TOKEN"})
    assert token.content == REDACTED  # the server has it; the model never reads it


async def test_a_call_past_its_timeout_is_a_retryable_error(shared: tuple[McpServers, Path]) -> None:
    servers, _ = shared
    with pytest.raises(ApplicationError) as caught:
        await servers.call("coder", "mcp__dict__sleep", {"seconds": 30}, timeout_seconds=0.5)
    assert caught.value.type == TIMEOUT and not caught.value.non_retryable
    assert (await servers.call("coder", "mcp__dict__lookup", {"word": "after"})).content.startswith("after:")


async def test_the_activities_list_and_call(shared: tuple[McpServers, Path], spans: InMemorySpanExporter) -> None:
    activities = McpActivities(shared[0])
    listed = await ActivityEnvironment().run(activities.list_mcp_tools, McpToolsInput(role="tester"))
    assert [tool.name for tool in listed.tools] == ["mcp__limited__lookup"]
    call = McpCallInput(role="tester", run_id="r", tool_use_id="t1", name="mcp__limited__lookup", input={"word": "hi"})
    result = await ActivityEnvironment().run(activities.call_mcp_tool, call)
    assert (result.content, result.is_error) == ("hi: a word of 2 letters", False)
    (span,) = [span for span in spans.get_finished_spans() if span.name == "mcp mcp__limited__lookup"]
    assert span.attributes is not None
    assert (span.attributes["forgeflow.mcp.server"], span.attributes["forgeflow.mcp.outcome"]) == ("limited", "ok")


async def test_a_killed_server_is_started_again_by_the_next_call(tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    servers = McpServers([stdio("dict", counter)])
    first = second = third = 0
    try:
        first = await pid_of(servers)
        os.kill(first, signal.SIGKILL)
        await wait_gone(first)

        answer = await servers.call("coder", "mcp__dict__lookup", {"word": "again"})
        assert (answer.content, answer.is_error) == ("again: a word of 5 letters", False)
        second = await pid_of(servers)
        assert second != first and servers.starts["dict"] == 2
        assert counter.read_text().splitlines() == ["again"]  # the dead server never ran it

        # Killed in the middle of a call: the call is sent once more, to the server started after it.
        slow = asyncio.create_task(servers.call("coder", "mcp__dict__sleep", {"seconds": 1}))
        await asyncio.sleep(0.3)
        os.kill(second, signal.SIGKILL)
        assert (await slow).content == "slept 1.0"
        third = await pid_of(servers)
        assert third not in (first, second) and servers.starts["dict"] == 3
    finally:
        await closed(servers, first, second, third)


async def test_a_server_that_dies_again_after_a_restart_is_a_clear_error(tmp_path: Path) -> None:
    servers = McpServers([stdio("dict", tmp_path / "calls")])
    try:
        with pytest.raises(ApplicationError) as caught:
            await servers.call("coder", "mcp__dict__die", {})
        assert caught.value.type == SERVER_DIED and "'dict' stopped again after a restart" in caught.value.message
        assert servers.starts["dict"] == 2
        assert (await servers.call("coder", "mcp__dict__lookup", {"word": "ok"})).content == "ok: a word of 2 letters"
    finally:
        await closed(servers)


async def test_a_server_that_cannot_start_is_a_clear_error(tmp_path: Path) -> None:
    not_mcp = McpServerConfig(name="broken", command=[sys.executable, "-c", "print('hello')"], roles=["coder"])
    missing = McpServerConfig(name="missing", command=[str(tmp_path / "no-such-program")], roles=["reviewer"])
    servers = McpServers([not_mcp, missing])
    try:
        for role, name in [("coder", "mcp__broken__x"), ("reviewer", "mcp__missing__x")]:
            with pytest.raises(ApplicationError) as caught:
                await servers.call(role, name, {})
            assert caught.value.type == SERVER_UNAVAILABLE and "could not be started" in caught.value.message
        with pytest.raises(ApplicationError, match="'broken' could not be started"):
            await servers.tools_for("coder")
    finally:
        await servers.close()


async def test_first_calls_together_start_one_process_which_inherits_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-for-servers")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_test_not_for_servers")
    servers = McpServers([stdio("dict", tmp_path / "calls")])
    pids: list[int] = []
    try:
        pids = await asyncio.gather(*(pid_of(servers) for _ in range(6)))
        assert len(set(pids)) == 1 and servers.starts["dict"] == 1
        seen = {
            name: (await servers.call("coder", "mcp__dict__env", {"name": name})).content
            for name in ("ANTHROPIC_API_KEY", "GITHUB_TOKEN", "PATH", "MCP_TEST_COUNTER")
        }
        assert seen["ANTHROPIC_API_KEY"] == seen["GITHUB_TOKEN"] == "<unset>"
        assert seen["PATH"] == os.environ["PATH"] and seen["MCP_TEST_COUNTER"] == str(tmp_path / "calls")
    finally:
        await closed(servers, *pids)


# Streamable HTTP: the same server, served by its own process on a free loopback port.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def http_port() -> int:
    return free_port()


def serve_http(port: int, counter: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MCP_TEST_COUNTER": str(counter)}
    process = subprocess.Popen([*SERVER, "--http", str(port)], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("the HTTP server did not start")


@pytest.fixture
def http_server(http_port: int, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = serve_http(http_port, tmp_path / "calls")
    yield process
    process.kill()
    process.wait()


async def test_a_streamable_http_server_is_reached_again_after_it_restarted(
    http_server: subprocess.Popen[bytes], http_port: int, tmp_path: Path
) -> None:
    config = McpServerConfig(
        name="web", url=f"http://127.0.0.1:{http_port}/mcp", roles=["coder"], headers={"X-Test": "forgeflow"}
    )
    servers = McpServers([config])
    try:
        assert "mcp__web__lookup" in {tool.name for tool in await servers.tools_for("coder")}
        assert (await servers.call("coder", "mcp__web__lookup", {"word": "web"})).content == "web: a word of 3 letters"

        http_server.kill()
        http_server.wait()
        with pytest.raises(ApplicationError, match="'web' could not be reached") as caught:
            await servers.call("coder", "mcp__web__lookup", {"word": "down"})
        assert caught.value.type == SERVER_UNAVAILABLE and not caught.value.non_retryable

        again = serve_http(http_port, tmp_path / "calls")  # the activity's retry, once the server is back
        try:
            answer = await servers.call("coder", "mcp__web__lookup", {"word": "back"})
            assert (answer.content, answer.is_error) == ("back: a word of 4 letters", False)
            assert servers.starts["web"] == 2
            assert (tmp_path / "calls").read_text().splitlines() == ["web", "back"]
        finally:
            again.kill()
            again.wait()
    finally:
        await servers.close()
