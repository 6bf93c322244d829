"""How much of a multi-turn agent run's input is read from Claude's prompt cache.

Runs the coder for N turns through the real `anthropic` client against the loopback Messages API,
whose cache model follows the request's own `cache_control` breakpoints, on the time-skipping
server. Prints the share of input tokens read from cache (one run, no timing involved).

    python -m benchmarks.cache_share [turns]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from contracts.agents import AgentResult, ModelSpec
from contracts.usage import Usage
from starter.sample import create_sample_repo
from starter.workers import build_workers
from testkit.loopback.anthropic_api import AnthropicLoopback, Reply
from testkit.scripts import agent_input
from testkit.tools import installed_binary

FILES = ["textkit/__init__.py", "tests/test_slugify.py", "README.md", "conftest.py"]


def coder_turns(turns: int) -> list[Reply]:
    reads = [
        Reply(
            content=[{"type": "tool_use", "id": f"toolu_{i:02d}", "name": "read_file", "input": {"path": FILES[i % 4]}}]
        )
        for i in range(turns - 1)
    ]
    done = {"summary": "read everything", "commit_message": "No change"}
    return [*reads, Reply(content=[{"type": "tool_use", "id": "toolu_done", "name": "submit", "input": done}])]


async def cached_share(env: WorkflowEnvironment, turns: int, work: Path) -> tuple[float, Usage]:
    """Run the coder for `turns` model turns; the share of its input tokens read from cache."""
    repo = create_sample_repo(work / "textkit")
    with AnthropicLoopback(simulate_cache=True) as api:
        api.replies = coder_turns(turns)
        queue = f"bench-{uuid.uuid4().hex[:6]}"
        settings = Settings.model_validate(
            {
                "FORGEFLOW_DATA_DIR": str(work / "data"),
                "FORGEFLOW_TASK_QUEUE": queue,
                "ANTHROPIC_API_KEY": "sk-bench",
                "ANTHROPIC_BASE_URL": api.base_url,
            }
        )
        inp = agent_input("coder", repo, ModelSpec(provider="anthropic"), brief="Read the repository, then submit.")
        (worker,) = build_workers(env.client, settings, [queue])
        async with worker:
            result = await env.client.execute_workflow(
                "AgentWorkflow", inp, id=f"bench-{uuid.uuid4().hex[:6]}", task_queue=queue, result_type=AgentResult
            )
    u = result.usage.usage
    total_input = u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens
    return u.cache_read_input_tokens / total_input, u


async def _run(turns: int, work: Path) -> tuple[float, Usage]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=installed_binary("temporal-test-server"), data_converter=pydantic_data_converter
    )
    try:
        return await cached_share(env, turns, work)
    finally:
        await env.shutdown()


def main() -> None:
    turns = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    with tempfile.TemporaryDirectory() as tmp:
        share, usage = asyncio.run(_run(turns, Path(tmp)))
    print(
        f"{turns} model turns: {share:.2f} of input tokens read from cache "
        f"(read {usage.cache_read_input_tokens}, written {usage.cache_creation_input_tokens}, "
        f"uncached {usage.input_tokens})"
    )


if __name__ == "__main__":
    main()
