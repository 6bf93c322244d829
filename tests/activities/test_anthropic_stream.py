"""A streamed answer put together from the Messages API's own event types: text joined, a tool call's
input parsed once its block ends, usage totals as the API reports them, a cut-off call left empty."""

from __future__ import annotations

from typing import Any

from anthropic.types import RawMessageStreamEvent
from pydantic import TypeAdapter

from activities.model.anthropic_provider import _Answer
from contracts.usage import Usage

EVENTS: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)


def answer(*events: dict[str, Any]) -> _Answer:
    built = _Answer()
    for event in events:
        built.add(EVENTS.validate_python(event))
    return built


def start(**usage: int) -> dict[str, Any]:
    counts = {"input_tokens": 0, "output_tokens": 0, **usage}
    message = {"id": "m", "type": "message", "role": "assistant", "model": "claude-x", "content": [],
               "stop_reason": None, "stop_sequence": None, "usage": counts}  # fmt: skip
    return {"type": "message_start", "message": message}


def text_deltas(index: int, *parts: str) -> list[dict[str, Any]]:
    return [
        {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
        *({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": p}} for p in parts),
        {"type": "content_block_stop", "index": index},
    ]


def tool_deltas(index: int, *parts: str, stop: bool = True) -> list[dict[str, Any]]:
    block = {"type": "tool_use", "id": "toolu_1", "name": "write_file", "input": {}}
    deltas = [{"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": p}}
              for p in parts]  # fmt: skip
    closing = [{"type": "content_block_stop", "index": index}] if stop else []
    return [{"type": "content_block_start", "index": index, "content_block": block}, *deltas, *closing]


def end(stop_reason: str, **usage: int) -> dict[str, Any]:
    return {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None}, "usage": usage}


def test_text_and_a_tool_call_in_many_deltas() -> None:
    content = "x" * 5000
    encoded = '{"path": "a.py", "content": "' + content + '"}'
    pieces = [encoded[i : i + 7] for i in range(0, len(encoded), 7)]  # hundreds of deltas, as the API sends
    built = answer(
        start(input_tokens=120, cache_read_input_tokens=100),
        *text_deltas(0, "I will ", "write ", "it."),
        *tool_deltas(1, *pieces),
        end("tool_use", output_tokens=57),
        {"type": "message_stop"},
    )
    assert built.content() == [
        {"type": "text", "text": "I will write it."},
        {"type": "tool_use", "id": "toolu_1", "name": "write_file", "input": {"path": "a.py", "content": content}},
    ]
    assert built.model == "claude-x" and built.stop_reason == "tool_use"
    assert built.usage == Usage(input_tokens=120, output_tokens=57, cache_read_input_tokens=100)


def test_usage_totals_in_message_delta_overwrite_and_missing_ones_keep_their_value() -> None:
    built = answer(
        start(input_tokens=10, cache_creation_input_tokens=4), end("end_turn", output_tokens=3, input_tokens=12)
    )
    assert built.usage == Usage(input_tokens=12, output_tokens=3, cache_creation_input_tokens=4)


def test_a_call_cut_off_by_max_tokens_has_no_input() -> None:
    """Its half of a JSON object is never run: the model turn drops a final call on max_tokens."""
    built = answer(start(), *text_deltas(0, "ok"), *tool_deltas(1, '{"path": "a.py", "cont', stop=False),
                   end("max_tokens", output_tokens=8192))  # fmt: skip
    assert built.content()[1]["input"] == {} and built.stop_reason == "max_tokens"
    closed = answer(start(), *tool_deltas(0, '{"path": "a.py", "cont'), end("max_tokens", output_tokens=1))
    assert closed.content()[0]["input"] == {}


def test_a_tool_call_without_input_deltas_keeps_the_empty_input() -> None:
    built = answer(start(), *tool_deltas(0), end("tool_use", output_tokens=1))
    assert built.content() == [{"type": "tool_use", "id": "toolu_1", "name": "write_file", "input": {}}]
