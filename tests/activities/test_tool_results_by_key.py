"""A long tool answer is in workflow history once, by key, not twice inline (issue 14): the tool
activity puts it in the blob store, the workflow passes the key on, the model turn reads it back."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.model.scripted import ScriptedProvider
from activities.model.turns import ModelActivities
from activities.tools import INLINE_RESULT_BYTES, PREVIEW_CHARS
from config.settings import Settings
from contracts.model import CONTENT_KEY, Message, ModelTurnInput, result_block
from starter.workers import role_prompts
from testkit.scripts import scripted, submit, turn, write_script
from testkit.tools import git
from tests.activities.test_tools import Tools
from tests.blobs import settings_blobs

SHAPED = "ghp_" + "Z9y8X7w6V5u4T3s2R1q0P9o8"  # a token's shape: taken out before the model reads it


async def test_a_long_answer_travels_by_key_and_a_short_one_inline(sample_repo: Path, tmp_path: Path) -> None:
    long_text = "".join(f"line {n}: {'x' * 60}\n" for n in range(40))
    (sample_repo / "big.txt").write_text(long_text)
    git(sample_repo, "add", "-A")
    git(sample_repo, "commit", "-qm", "big")
    tools = Tools(sample_repo, tmp_path)

    read = await tools.call("read_file", path="big.txt")
    sent = tools.sent
    assert sent is not None and sent.content_key is not None
    assert len(sent.content) < PREVIEW_CHARS + 60 and sent.content.startswith("    1| line 0")  # a preview
    assert "line 39" in read.content and "line 39" in tools.blobs.get(sent.content_key).decode()
    assert len(tools.blobs.get(sent.content_key)) > INLINE_RESULT_BYTES

    wrote = await tools.call("write_file", path="small.txt", content="hi\n")
    assert tools.sent is not None and tools.sent.content_key is None and wrote.content == tools.sent.content


async def test_the_model_reads_the_answer_behind_the_key(tmp_path: Path) -> None:
    settings = Settings.model_validate({"FORGEFLOW_DATA_DIR": str(tmp_path / "data")})
    blobs = settings_blobs(settings)
    key = blobs.put(f"the whole answer, with a token {SHAPED}\n".encode())
    expected = ["the whole answer, with a token [redacted]"]  # the provider was sent the text, redacted
    script = write_script(
        tmp_path / "s.json", {"planner": [{"turns": [turn(submit(summary="s", tasks=[]), expect=expected)]}]}
    )
    activities = ModelActivities(blobs, {"scripted": ScriptedProvider()}, role_prompts())
    block = result_block("t1", "preview", content_key=key)
    result = await ActivityEnvironment().run(
        activities.model_turn,
        ModelTurnInput(
            role="planner", run_id="r", invocation=0, turn=0, model=scripted(script),
            new_messages=[Message(role="user", content=[{"type": "text", "text": "brief"}, block])],
        ),
    )  # fmt: skip
    stored = blobs.get(result.transcript_key).decode()
    assert "the whole answer" in stored and CONTENT_KEY not in stored and SHAPED not in stored


async def test_a_key_missing_from_the_store_is_retried_and_named(tmp_path: Path) -> None:
    settings = Settings.model_validate({"FORGEFLOW_DATA_DIR": str(tmp_path / "data")})
    activities = ModelActivities(settings_blobs(settings), {"scripted": ScriptedProvider()}, role_prompts())
    missing = "sha256:" + "0" * 64
    script = write_script(tmp_path / "s.json", {"planner": [{"turns": [turn(submit(summary="s", tasks=[]))]}]})
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(
            activities.model_turn,
            ModelTurnInput(
                role="planner", run_id="r", invocation=0, turn=0, model=scripted(script),
                new_messages=[Message(role="user", content=[result_block("t1", "p", content_key=missing)])],
            ),
        )  # fmt: skip
    assert err.value.type == "BlobNotFound" and not err.value.non_retryable
    assert missing in err.value.message and "FORGEFLOW_STORAGE_URL" in err.value.message
