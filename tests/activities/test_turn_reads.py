"""A model turn that runs its reply's read-only tool calls itself (activities/model/answers.py): Claude
through the real `anthropic` client against the loopback, the tools on real git, the answers kept on
the real local object store."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.blobstore import BlobNotFoundError, BlobStore
from activities.model.answers import READ_ATTEMPTS, AnswerLedger, TurnReads, read_calls
from activities.model.turns import ModelActivities, joined
from config.settings import Settings
from contracts.agents import ModelSpec, Workspace
from contracts.model import CONTENT_KEY, Message, ModelTurnInput, ModelTurnResult, ReadScope
from contracts.tools import ToolCallInput
from starter.workers import model_providers, object_store, role_prompts
from testkit.loopback.anthropic_api import AnthropicLoopback, Reply
from testkit.tools import git
from tests.activities.test_tools import Tools

READS = ["list_files", "read_file", "search", "view_diff"]


def call(name: str, n: int, **tool_input: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_{n:02d}", "name": name, "input": tool_input}


@pytest.mark.parametrize(
    ("names", "scope_tools", "runs_here"),
    [
        (["read_file"], READS, True),
        (["read_file", "list_files", "submit"], READS, True),  # submit is the loop's, the reads the turn's
        (["read_file", "str_replace"], READS, False),  # a write: the loop runs the turn's calls in order
        (["run_command"], READS, False),
        (["read_file"], ["list_files"], False),  # a read the repository narrowed away
        (["submit"], READS, False),  # nothing to read
        ([], READS, False),
    ],
)
def test_which_replies_the_turn_reads_for(names: list[str], scope_tools: list[str], runs_here: bool) -> None:
    content = [{"type": "text", "text": "hm"}, *(call(name, n) for n, name in enumerate(names))]
    scope = ReadScope(workspace=Workspace(repo="/r", base_sha="0" * 40), tools=scope_tools)
    found = read_calls(content, scope)
    assert (found is not None) is runs_here
    assert read_calls(content, None) is None  # a run before shape level 2 sends no scope


@pytest.fixture
def api() -> Iterator[AnthropicLoopback]:
    with AnthropicLoopback() as server:
        yield server


@dataclasses.dataclass
class Turns:
    """The model-turn activity as a worker builds it: Claude through the loopback, the tools on the repository."""

    tools: Tools
    model: ModelActivities
    answers: AnswerLedger
    settings: Settings


@pytest.fixture
def turns(sample_repo: Path, tmp_path: Path, api: AnthropicLoopback) -> Turns:
    settings = Settings.model_validate(
        {
            "FORGEFLOW_DATA_DIR": str(tmp_path / "data"),
            "ANTHROPIC_API_KEY": "sk-ant-loopback-0123456789",
            "ANTHROPIC_BASE_URL": api.base_url,
        }
    )
    tools = Tools(sample_repo, tmp_path)
    answers = AnswerLedger(object_store(settings))
    model = ModelActivities(
        tools.blobs, model_providers(settings), role_prompts(), reads=TurnReads(tools.acts.answer, answers)
    )
    return Turns(tools, model, answers, settings)


def attempt(n: int) -> ActivityEnvironment:
    """An activity environment whose activity runs in attempt `n` (an earlier one was lost)."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=n)
    return env


def turn_input(tools: Tools, scope: bool = True) -> ModelTurnInput:
    return ModelTurnInput(
        role="coder",
        run_id="r",
        invocation=0,
        turn=0,
        model=ModelSpec(provider="anthropic", model="claude-sonnet-4-6"),
        new_messages=[Message(role="user", content=[{"type": "text", "text": "Look around."}])],
        reads=ReadScope(workspace=tools.ws, tools=READS) if scope else None,
    )


def reply(*calls: dict[str, Any]) -> Reply:
    return Reply(content=[{"type": "text", "text": "looking"}, *calls], usage={"input_tokens": 10, "output_tokens": 5})


async def test_a_turn_that_only_reads_answers_its_calls_and_a_retry_does_not_ask_again(
    turns: Turns, api: AnthropicLoopback
) -> None:
    model, answers = turns.model, turns.answers
    inp = turn_input(turns.tools)
    api.replies = [reply(call("list_files", 1), call("read_file", 2, path="calc/__init__.py"))]
    first: ModelTurnResult = await ActivityEnvironment().run(model.model_turn, inp)
    assert len(api.requests) == 1 and first.read_results is not None
    listed, read = first.read_results
    assert listed["tool_use_id"] == "toolu_01" and "calc/__init__.py" in listed["content"]
    assert read["tool_use_id"] == "toolu_02" and "def add" in read["content"] and not read["is_error"]
    assert await answers.get(inp) is not None  # kept before the reads ran

    # The worker died during the reads: the next attempt takes the kept answer, and asks nothing.
    again: ModelTurnResult = await attempt(2).run(model.model_turn, inp)
    assert len(api.requests) == 1
    assert again.content == first.content and again.read_results == first.read_results
    assert again.usage == first.usage  # the run still counts what the answer cost, once


async def test_a_turn_that_writes_or_runs_before_level_2_leaves_the_calls_to_the_loop(
    turns: Turns, api: AnthropicLoopback
) -> None:
    model, answers, tools = turns.model, turns.answers, turns.tools
    writes = turn_input(tools)
    api.replies = [reply(call("read_file", 1, path="calc/__init__.py"), call("write_file", 2, path="x", content="")),
                   reply(call("read_file", 3, path="calc/__init__.py"))]  # fmt: skip
    result: ModelTurnResult = await ActivityEnvironment().run(model.model_turn, writes)
    assert result.read_results is None and await answers.get(writes) is None
    older = turn_input(tools, scope=False)
    result = await ActivityEnvironment().run(model.model_turn, older)
    assert result.read_results is None and len(api.requests) == 2


async def test_a_long_read_travels_by_key_and_a_failing_one_is_retried_then_the_models_to_read(
    turns: Turns, sample_repo: Path, api: AnthropicLoopback
) -> None:
    (sample_repo / "big.txt").write_text("".join(f"line {n}: {'x' * 60}\n" for n in range(40)))
    git(sample_repo, "add", "-A")
    git(sample_repo, "commit", "-qm", "big")
    tools, model = turns.tools, turns.model
    tools.rebase(sample_repo)
    api.replies = [reply(call("read_file", 1, path="big.txt"))]
    result: ModelTurnResult = await ActivityEnvironment().run(model.model_turn, turn_input(tools))
    assert result.read_results is not None and result.read_results[0].get(CONTENT_KEY)  # as a tool activity's would

    lost = tools.ws.model_copy(update={"overlay": {"calc/lost.py": "sha256:" + "0" * 64}})  # never stored
    inp = turn_input(tools).model_copy(update={"reads": ReadScope(workspace=lost, tools=READS)})
    api.replies = [reply(call("read_file", 2, path="calc/lost.py"))]
    with pytest.raises(ApplicationError) as err:  # retryable: the next attempt reads again, not the model
        await ActivityEnvironment().run(model.model_turn, inp)
    assert err.value.type == "BlobNotFound" and not err.value.non_retryable
    result = await attempt(READ_ATTEMPTS).run(
        model.model_turn, inp
    )  # the kept answer; the read's failure is the model's to read
    assert len(api.requests) == 2 and result.read_results is not None
    (failed,) = result.read_results
    assert failed["is_error"] and failed["content"].startswith("read_file failed:") and "0" * 64 in failed["content"]


@pytest.mark.parametrize(
    ("transcript", "new", "roles", "last_user_blocks"),
    [
        ([], ["user"], ["user"], 1),
        (["user", "assistant"], ["user"], ["user", "assistant", "user"], 1),
        (["user", "assistant", "user"], ["user"], ["user", "assistant", "user"], 2),  # reads + the loop's answer
        (["user", "assistant", "user"], [], ["user", "assistant", "user"], 1),  # a turn that only read
    ],
)
def test_a_first_new_user_message_joins_a_transcript_ending_with_one(
    transcript: list[str], new: list[str], roles: list[str], last_user_blocks: int
) -> None:
    def messages(kinds: list[str], text: str) -> list[Message]:
        return [Message(role=kind, content=[{"type": "text", "text": f"{text}{n}"}]) for n, kind in enumerate(kinds)]  # type: ignore[arg-type]

    out = joined(messages(transcript, "old"), messages(new, "new"))
    assert [m.role for m in out] == roles
    assert len(out[-1].content) == last_user_blocks


def into_transcript(inp: ModelTurnInput) -> ModelTurnInput:
    assert inp.reads is not None
    return inp.model_copy(update={"reads": inp.reads.model_copy(update={"into_transcript": True})})


async def test_reads_put_in_the_transcript_are_whole_and_redacted_and_not_returned(
    turns: Turns, sample_repo: Path, api: AnthropicLoopback
) -> None:
    secret = "worker-secret-0123456789abcdef"
    (sample_repo / "big.txt").write_text("".join(f"line {n}: {'x' * 60}\n" for n in range(40)) + f"{secret}\n")
    git(sample_repo, "add", "-A")
    git(sample_repo, "commit", "-qm", "big")
    tools = turns.tools
    tools.rebase(sample_repo)
    model = ModelActivities(
        tools.blobs, model_providers(turns.settings), role_prompts(), secrets=[secret],
        reads=TurnReads(tools.acts.answer, turns.answers),
    )  # fmt: skip
    inp = into_transcript(turn_input(tools))
    api.replies = [reply(call("read_file", 1, path="big.txt"), call("list_files", 2))]
    result: ModelTurnResult = await ActivityEnvironment().run(model.model_turn, inp)
    assert result.read_results is None and result.reads_in_transcript == 2
    assert "line 39" not in result.model_dump_json()  # the workflow gets a count, not the text

    stored = [Message.model_validate(m) for m in json.loads(await tools.blobs.get_async(result.transcript_key))]
    assert [m.role for m in stored] == ["user", "assistant", "user"]
    read, listed = stored[-1].content
    assert read["tool_use_id"] == "toolu_01" and CONTENT_KEY not in read  # the whole text, not the key a tool gives
    assert "line 39" in read["content"] and secret not in read["content"]
    req = ToolCallInput(role="coder", run_id="r", tool_use_id="t", name="read_file", input={"path": "big.txt"},
                        workspace=tools.ws)  # fmt: skip
    whole = (await tools.acts.answer(req, by_key=False)).content  # what a tool activity would have stored
    with pytest.raises(BlobNotFoundError):  # ... and the turn did not: the transcript holds it
        await tools.blobs.get_async(BlobStore.key_for(whole.encode()))
    assert listed["tool_use_id"] == "toolu_02" and "big.txt" in listed["content"]

    # A retry (the worker died during the reads) takes the kept answer and stores the same transcript.
    again: ModelTurnResult = await attempt(2).run(model.model_turn, inp)
    assert len(api.requests) == 1 and again.transcript_key == result.transcript_key
