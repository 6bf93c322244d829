"""Keep a conversation inside the model's context window without breaking a tool exchange. Pure.

When the transcript grows past the limit, the oldest turns are replaced by a summary: every user
text (briefs, test failures, review comments, human feedback) verbatim, and one line per tool call
with the first line of its result. The kept tail starts at an assistant turn, so each tool_result
still follows its tool_use, and the first message stays a user message.
"""

from __future__ import annotations

import json
from typing import Any

from contracts.model import Block, Message

CHARS_PER_TOKEN = 4
NOTE_CHARS = 160


def estimate_tokens(messages: list[Message]) -> int:
    return len(json.dumps([m.model_dump() for m in messages])) // CHARS_PER_TOKEN


def compact(messages: list[Message], limit_tokens: int) -> list[Message] | None:
    """A shorter equivalent conversation, or None when it already fits."""
    if estimate_tokens(messages) <= limit_tokens:
        return None
    cuts = [i for i in range(2, len(messages)) if messages[i].role == "assistant"]
    if not cuts:
        return None
    fitting = [i for i in cuts if estimate_tokens(messages[i:]) <= limit_tokens // 2]
    cut = fitting[0] if fitting else cuts[-1]
    summary = _summary(messages[:cut])
    return [Message(role="user", content=[{"type": "text", "text": summary}]), *messages[cut:]]


def _summary(dropped: list[Message]) -> str:
    results = {
        str(b.get("tool_use_id")): _first_line(b.get("content"))
        for m in dropped
        for b in m.content
        if b.get("type") == "tool_result"
    }
    lines = [f"[{len(dropped)} earlier messages were compacted to fit the context window; their gist follows]"]
    for m in dropped:
        for block in m.content:
            lines.extend(_note(m.role, block, results))
    return "\n".join(lines)


def _note(role: str, block: Block, results: dict[str, str]) -> list[str]:
    kind = block.get("type")
    if kind == "text" and role == "user":
        return [str(block.get("text", ""))]  # briefs, failures, feedback: kept whole
    if kind == "text":
        return [f"(you wrote) {str(block.get('text', ''))[:NOTE_CHARS]}"]
    if kind == "tool_use":
        args = json.dumps(block.get("input", {}), sort_keys=True)[:NOTE_CHARS]
        return [f"(you called) {block.get('name')} {args} → {results.get(str(block.get('id')), '(no result)')}"]
    return []


def _first_line(content: Any) -> str:
    text = content if isinstance(content, str) else json.dumps(content)
    first = text.strip().splitlines()[0] if text.strip() else "(empty)"
    return first[:NOTE_CHARS]
