"""The `forgeflow` command as a person uses it: bad input, and the README's first command."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from starter.cli import app, build_input
from starter.demo import log_errors


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--repo", "/tmp/x", "--spec", "do it", "--mode", "bogus"], "invalid mode"),
        (["--repo", "not a repo!", "--spec", "do it"], "invalid repo"),
        (["--repo", "/tmp/x"], "no task to work on"),
        (["--repo", "/tmp/x", "--spec", "x", "--max-retries", "99"], "invalid max_retries"),
        (["--repo", "/tmp/x", "--spec", "x", "--commands", "coder,deployer"], "invalid commands.1"),
    ],
)
def test_bad_input_is_named_before_anything_starts(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["start", *args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def embedded_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {
        **os.environ,
        "FORGEFLOW_DATA_DIR": str(tmp_path / "ff"),
        "TEMPORAL_ADDRESS": f"127.0.0.1:{_free_port()}",
        "FORGEFLOW_UI_PORT": str(_free_port()),
        "COLUMNS": "200",
    }
    yield env
    subprocess.run([sys.executable, "-m", "starter", "server", "--stop"], env=env, capture_output=True, timeout=30)


def forgeflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "starter", *args], env=env, capture_output=True, text=True, timeout=300
    )


CONSOLE_LOG_LINE = re.compile(r"\[(debug|info|warning|error|critical)\s*\]")  # structlog's console rendering


def _log_lines(text: str) -> list[str]:
    """Lines of `text` that are worker log lines (JSON, or structlog's or the SDK's console rendering)."""
    return [
        line
        for line in text.splitlines()
        if line.lstrip().startswith("{") or "activity_type=" in line or CONSOLE_LOG_LINE.search(line)
    ]


@pytest.mark.e2e
def test_demo_on_the_embedded_default(embedded_env: dict[str, str]) -> None:
    """`forgeflow demo` with nothing running: it starts the dev server itself and the run is approved."""
    started = time.monotonic()
    demo = forgeflow(embedded_env, "demo")
    print(f"forgeflow demo took {time.monotonic() - started:.1f} s")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    out = demo.stdout

    # The terminal shows progress and the summary; the workers' log lines (this process's and the
    # sandbox worker's) are in the file the demo names.
    assert _log_lines(demo.stdout + demo.stderr) == [], demo.stdout + demo.stderr
    named = re.search(r"worker logs: (\S+\.log)", out)
    assert named is not None, out
    log = Path(named.group(1))
    assert log.parent == Path(embedded_env["FORGEFLOW_DATA_DIR"], "logs")
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    events = {e["event"] for e in entries}
    assert {"object store", "model turn", "tool call", "sandbox call"} <= events  # "sandbox call": the child's
    assert any("serving ['forgeflow-sandbox']" in line for line in log.read_text().splitlines())  # its stdout
    assert "started the embedded Temporal dev server" in out
    assert "scripted replay (no API calls)" in out
    assert "tests failed; retrying with the failures" in out and "review approved" in out
    assert re.search(r"outcome\s+│\s+approved", out)
    ui = f"http://127.0.0.1:{embedded_env['FORGEFLOW_UI_PORT']}/namespaces/default/workflows/forgeflow-demo-"
    assert ui in out
    assert Path(embedded_env["FORGEFLOW_DATA_DIR"], "temporal.sqlite").exists()

    # The server outlives the command: status and a refused decision go through the CLI.
    workflow_id = re.search(r"forgeflow-demo-\d{8}-\d{6}", out)
    assert workflow_id is not None
    status = forgeflow(embedded_env, "status", workflow_id.group(0), "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["outcome"] == "approved"
    refused = forgeflow(embedded_env, "approve", workflow_id.group(0))
    assert refused.returncode == 1


def test_a_failed_demo_names_its_log_and_verbose_keeps_the_logs_here(tmp_path: Path) -> None:
    """Without a server to reach the demo fails at once: it says why, and where its log is (there is
    no log line on the terminal to go by); `--verbose` writes no log file, the lines come here."""
    env = {**os.environ, "TEMPORAL_ADDRESS": "nothing-here.invalid:7233", "COLUMNS": "200"}
    quiet_env = {**env, "FORGEFLOW_DATA_DIR": str(tmp_path / "quiet")}
    verbose_env = {**env, "FORGEFLOW_DATA_DIR": str(tmp_path / "verbose")}
    argv = [sys.executable, "-m", "starter", "demo"]
    runs = [
        subprocess.Popen(a, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for a, e in ((argv, quiet_env), ([*argv, "--verbose"], verbose_env))
    ]
    (quiet_out, quiet_err), (verbose_out, verbose_err) = (run.communicate(timeout=120) for run in runs)
    assert [run.returncode for run in runs] == [1, 1]
    assert _log_lines(quiet_out + quiet_err) == []
    for err in (quiet_err, verbose_err):
        assert "nothing answers at TEMPORAL_ADDRESS=nothing-here.invalid:7233" in err
    (log,) = (tmp_path / "quiet" / "logs").glob("demo-*.log")
    assert f"the workers' log: {log}" in quiet_err
    assert "workers' log" not in verbose_out + verbose_err and not (tmp_path / "verbose" / "logs").exists()


def test_a_failed_demo_repeats_the_errors_of_its_log(tmp_path: Path) -> None:
    log = tmp_path / "demo.log"
    entries = [
        {"event": "model turn", "level": "info"},
        {"event": "activity failed", "level": "error", "exception": "Traceback ...\nValueError: boom"},
        {"event": "worker stopped", "level": "critical"},
    ]
    lines = [json.dumps(e) for e in entries] + ["refusing to serve forgeflow-sandbox: ...", ""]
    log.write_text("\n".join(lines))
    assert log_errors(log) == [
        "activity failed: ValueError: boom",
        "worker stopped",
        "refusing to serve forgeflow-sandbox: ...",
    ]
    assert log_errors(log, limit=1) == ["refusing to serve forgeflow-sandbox: ..."]
    assert log_errors(tmp_path / "absent.log") == []


def test_sandbox_commands_are_split_like_a_shell(tmp_path: Path) -> None:
    inp = build_input(
        str(tmp_path), None, None, "do it", None, "autonomous", 3, False, None, None,
        "pytest -k 'not slow'", "pip install -e .[test]",
    )  # fmt: skip
    assert inp.test_command == ["pytest", "-k", "not slow"]
    assert inp.install_command == ["pip", "install", "-e", ".[test]"]


@pytest.mark.parametrize(("option", "roles"), [(None, None), ("none", []), ("coder, reviewer", ["coder", "reviewer"])])
def test_the_agents_that_may_run_commands(tmp_path: Path, option: str | None, roles: list[str] | None) -> None:
    inp = build_input(
        str(tmp_path), None, None, "do it", None, "autonomous", 3, False, None, None, None, None, option
    )  # fmt: skip
    assert inp.commands == roles
