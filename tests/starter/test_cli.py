"""The `forgeflow` command as a person uses it: bad input, and the README's first command."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from starter.cli import app, build_input


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--repo", "/tmp/x", "--spec", "do it", "--mode", "bogus"], "invalid mode"),
        (["--repo", "not a repo!", "--spec", "do it"], "invalid repo"),
        (["--repo", "/tmp/x"], "no task to work on"),
        (["--repo", "/tmp/x", "--spec", "x", "--max-retries", "99"], "invalid max_retries"),
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


@pytest.mark.e2e
def test_demo_on_the_embedded_default(embedded_env: dict[str, str]) -> None:
    """`forgeflow demo` with nothing running: it starts the dev server itself and the run is approved."""
    demo = forgeflow(embedded_env, "demo")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    out = demo.stdout
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


def test_sandbox_commands_are_split_like_a_shell(tmp_path: Path) -> None:
    inp = build_input(
        str(tmp_path), None, None, "do it", None, "autonomous", 3, False, None, None,
        "pytest -k 'not slow'", "pip install -e .[test]",
    )  # fmt: skip
    assert inp.test_command == ["pytest", "-k", "not slow"]
    assert inp.install_command == ["pip", "install", "-e", ".[test]"]
