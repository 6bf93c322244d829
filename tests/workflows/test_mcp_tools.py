"""An operator's MCP tool server in a run: the planner calls its tool, the server is killed mid-run,
and the next call starts it again. Real workflows on the time-skipping server, a real stdio server
process (testkit/mcp_server.py) through the official SDK, and a scripted planner whose `expect`
fails the run unless each tool answer reached the model.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from activities.mcp import McpServers
from config.settings import Settings
from contracts.mcp import McpServerConfig
from contracts.run import IssueResult, Outcome
from starter.workers import build_workers
from testkit.scripts import submit, tool, turn, write_script

ROOT = Path(__file__).resolve().parents[2]


def server_pids() -> list[int]:
    """This process's MCP test servers."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"testkit.mcp_server" in cmdline and ppid == os.getpid():
            found.append(int(proc.name))
    return found


def kill_after_first_call(counter: Path) -> int:
    """Kill -9 the server once it has answered one call; its pid."""
    deadline = time.monotonic() + 60
    while not counter.exists() or not counter.read_text().strip():
        assert time.monotonic() < deadline, "the tool was never called"
        time.sleep(0.05)
    (pid,) = server_pids()
    os.kill(pid, signal.SIGKILL)
    return pid


async def test_a_role_calls_an_mcp_tool_and_a_killed_server_is_started_again(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    counter = tmp_path / "calls.txt"
    server = McpServerConfig(
        name="dict",
        command=[sys.executable, "-m", "testkit.mcp_server"],
        env={"PYTHONPATH": str(ROOT), "MCP_TEST_COUNTER": str(counter)},
        roles=["planner"],
        tools=["lookup"],
    )
    plan = {"summary": "Add subtract", "tasks": [{"id": "t1", "title": "subtract", "files": ["calc/__init__.py"]}]}
    planner = {
        "turns": [
            turn(tool("mcp__dict__lookup", word="durable")),
            turn(tool("mcp__dict__lookup", word="workflow"), expect=["durable: a word of 7 letters"]),
            turn(submit(**plan), expect=["workflow: a word of 8 letters"]),
        ]
    }
    script = write_script(tmp_path / "s.json", {"planner": [planner]})
    queue = f"mcp-{uuid.uuid4().hex[:6]}"
    settings = Settings.model_validate(
        {"FORGEFLOW_DATA_DIR": str(tmp_path / "data"), "FORGEFLOW_TASK_QUEUE": queue, "FORGEFLOW_SCRIPT_DELAY": "1"}
    )
    servers = McpServers([server])
    try:
        (worker,) = build_workers(time_skipping_env.client, settings, [queue], mcp=servers)
        async with worker:
            killer = asyncio.create_task(asyncio.to_thread(kill_after_first_call, counter))
            result = await time_skipping_env.client.execute_workflow(
                "IssueWorkflow",
                {"repo": str(sample_repo), "spec_content": "# Add subtract", "mode": "plan", "model_script": script},
                id=f"mcp-{uuid.uuid4().hex[:6]}",
                task_queue=queue,
                result_type=IssueResult,
            )
            killed = await killer
        assert result.outcome == Outcome.PLANNED
        assert counter.read_text().split() == ["durable", "workflow"]  # each call made once
        assert servers.starts["dict"] == 2  # started on first use, and again after the kill
        assert killed not in server_pids()
    finally:
        await servers.close()
    assert server_pids() == []
