"""A run whose coder writes a 5 MB generated file: above Temporal's 2 MB payload limit, so the
payloads go through external storage (the SDK's claim check) and the history stays small."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from contracts.run import IssueResult, Outcome
from payloads.converter import data_converter
from starter.workers import build_workers
from testkit.scripts import planner_run, reviewer_run, submit, tester_run, tool, turn, write_script
from testkit.tools import git

pytestmark = pytest.mark.e2e
FIVE_MB = 5 * 1024 * 1024


def generated_table() -> str:
    """5 MB of text that doesn't compress away to nothing: one numbered row per line."""
    rows, size, n = [], 0, 0
    while size < FIVE_MB:
        row = f"{n:08d},{(n * 2654435761) % 4294967296:010d},{'abcdefghij'[n % 10] * 40}\n"
        rows.append(row)
        size += len(row)
        n += 1
    return "".join(rows)


async def test_a_five_megabyte_file_goes_through_and_history_stays_small(
    dev_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    table = generated_table()
    coder = {"turns": [
        turn(tool("write_file", path="data/table.csv", content=table)),
        turn(submit(summary="generated the table", commit_message="Add the generated table")),
    ]}  # fmt: skip
    script = write_script(
        tmp_path / "big.json",
        {"planner": [planner_run()], "coder": [coder], "tester": [tester_run()], "reviewer": [reviewer_run()]},
    )
    queue = f"big-{uuid.uuid4().hex[:6]}"
    settings = Settings.model_validate({"FORGEFLOW_DATA_DIR": str(tmp_path / "data"), "FORGEFLOW_TASK_QUEUE": queue})
    client = await Client.connect(
        dev_env.client.service_client.config.target_host, data_converter=data_converter(settings)
    )
    run_id = f"big-{uuid.uuid4().hex[:6]}"
    workers = build_workers(client, settings)
    async with workers[0], workers[1]:
        result = await asyncio.wait_for(
            client.execute_workflow(
                "IssueWorkflow",
                {"repo": str(sample_repo), "spec_content": "Add a generated table.", "model_script": script},
                id=run_id, task_queue=queue, result_type=IssueResult,
            ),
            timeout=180,
        )  # fmt: skip
    assert result.outcome == Outcome.APPROVED
    (branch,) = result.state.branches_created
    assert git(sample_repo, "show", f"{branch}:data/table.csv") + "\n" == table  # every byte arrived

    total = 0
    history = await client.get_workflow_handle(run_id).fetch_history()  # the agents' turns are in it
    total += sum(event.ByteSize() for event in history.events)
    assert total < 512 * 1024, f"history is {total} bytes"
    stored = [p for p in (tmp_path / "data" / "payloads").rglob("*") if p.is_file()]
    assert max(p.stat().st_size for p in stored) > FIVE_MB  # the file's payloads, outside history
