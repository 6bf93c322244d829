"""The model-turn activity is the one door to the model: secrets are taken out of what goes through it."""

from __future__ import annotations

from pathlib import Path

from temporalio.testing import ActivityEnvironment

from activities.model.scripted import ScriptedProvider
from activities.model.turns import ModelActivities
from config.settings import Settings
from contracts.model import Message, ModelTurnInput
from starter.workers import role_prompts
from testkit.scripts import scripted, submit, turn, write_script
from tests.blobs import settings_blobs

WORKER_KEY = "worker-only-value-8c1f2e"  # no token shape: only the exact-value net can catch it
SHAPED = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2"  # a GitHub token's shape, known to nobody here


async def test_secrets_are_taken_out_of_everything_the_model_reads(tmp_path: Path) -> None:
    settings = Settings.model_validate({"FORGEFLOW_DATA_DIR": str(tmp_path / "data")})
    blobs = settings_blobs(settings)
    script = write_script(
        tmp_path / "s.json",
        {"planner": [{"turns": [turn(submit(summary="s", tasks=[]), expect=["key=[redacted]", "token [redacted]"])]}]},
    )
    activities = ModelActivities(blobs, {"scripted": ScriptedProvider()}, role_prompts(), secrets=[WORKER_KEY])
    brief = {"type": "text", "text": f"The issue quotes key={WORKER_KEY} and a token {SHAPED}."}
    tool_result = {"type": "tool_result", "tool_use_id": "t1", "content": f"log: token {SHAPED}"}
    result = await ActivityEnvironment().run(
        activities.model_turn,
        ModelTurnInput(
            role="planner",
            run_id="r",
            invocation=0,
            turn=0,
            model=scripted(script),
            new_messages=[Message(role="user", content=[brief, tool_result])],
        ),
    )  # the script's `expect` proves the provider was sent the redacted text
    stored = blobs.get(result.transcript_key).decode()
    assert WORKER_KEY not in stored and SHAPED not in stored and "[redacted]" in stored
