from __future__ import annotations

from typing import Any

from contracts.model import Message
from policy.compaction import compact, estimate_tokens


def user(*blocks: dict[str, Any]) -> Message:
    return Message(role="user", content=list(blocks))


def assistant(*blocks: dict[str, Any]) -> Message:
    return Message(role="assistant", content=list(blocks))


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


def call(n: int) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"t{n}", "name": "read_file", "input": {"path": f"f{n}.py"}}


def result(n: int) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": f"t{n}", "content": f"line one of f{n}\n" + "x" * 2000}


def conversation(turns: int) -> list[Message]:
    messages = [user(text("BRIEF: add subtract"))]
    for n in range(turns):
        messages += [assistant(text(f"reading {n}"), call(n)), user(result(n))]
    if turns > 5:
        messages[10] = user(result(4), text("FAILURE: test_subtract failed"))  # a brief mid-conversation
    return messages


def test_fits_already() -> None:
    assert compact(conversation(3), limit_tokens=10_000) is None


def test_compacted_conversation_keeps_exchanges_whole_and_briefs_verbatim() -> None:
    before = conversation(12)
    after = compact(before, limit_tokens=3000)
    assert after is not None
    assert estimate_tokens(after) < estimate_tokens(before) and estimate_tokens(after) <= 3000
    assert after[0].role == "user" and after[1].role == "assistant"
    roles = [m.role for m in after]
    assert roles == [("user", "assistant")[i % 2] for i in range(len(after))]  # still alternating
    summary = after[0].content[0]["text"]
    assert "BRIEF: add subtract" in summary and "FAILURE: test_subtract failed" in summary
    assert '(you called) read_file {"path": "f0.py"} → line one of f0' in summary
    assert after[-1] == before[-1]  # the newest exchange is untouched


def test_nothing_to_cut() -> None:
    assert compact([user(text("x" * 50_000))], limit_tokens=10) is None
