"""Detect an agent repeating the same tool call with the same input. Pure."""

from __future__ import annotations

import json
from typing import Any

REPEAT_LIMIT = 3


def call_signature(name: str, tool_input: dict[str, Any]) -> str:
    return name + ":" + json.dumps(tool_input, sort_keys=True, separators=(",", ":"))


def stuck_reason(recent: list[str], limit: int = REPEAT_LIMIT) -> str | None:
    """Why the agent looks stuck: its last `limit` turns made the very same call; None otherwise."""
    if len(recent) < limit or len(set(recent[-limit:])) != 1:
        return None
    name = recent[-1].split(":", 1)[0]
    return f"the agent repeated the same {name} call with the same input {limit} times in a row"
