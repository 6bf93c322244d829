"""An example LangGraph graph that reviews a change for security, usable as a reviewer or an extra
reviewer: run option `"graphs": {"reviewer:security": "graphs.security_review:graph"}`.

Two nodes, each one model call through forgeflow (`config["configurable"]["forgeflow"]`, see
activities/graphs.py): `assess` lists the security-relevant parts of the diff, `review` turns that
into forgeflow's review (verdict, summary, line comments). Each node's result is checkpointed, so a
worker lost during `review` resumes there and does not ask `assess` again.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph

ASSESS = "You review code changes for security. List the security-relevant changes in this diff, briefly."
REVIEW = (
    "Turn this assessment into a code review. Answer with one JSON object and nothing else: "
    '{"verdict": "approve" or "request_changes", "summary": "...", '
    '"comments": [{"path": "...", "line": 1, "severity": "minor", "category": "security", "body": "..."}]}'
)


class State(TypedDict, total=False):
    brief: str
    concerns: str
    submission: dict[str, Any]


def _forgeflow(config: RunnableConfig) -> Any:
    return config["configurable"]["forgeflow"]


async def assess(state: State, config: RunnableConfig) -> State:
    forgeflow = _forgeflow(config)
    diff = await forgeflow.diff()
    return {"concerns": await forgeflow.ask(ASSESS, f"{state['brief']}\n\nThe diff:\n{diff[:40_000]}")}


async def review(state: State, config: RunnableConfig) -> State:
    answer = await _forgeflow(config).ask(REVIEW, state["concerns"])
    return {"submission": _review(answer)}


def _review(answer: str) -> dict[str, Any]:
    """The review in the model's answer; an answer without one is a comment-free request for changes."""
    found = re.search(r"\{.*\}", answer, re.DOTALL)
    try:
        parsed = json.loads(found.group(0)) if found else None
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict) or parsed.get("verdict") not in ("approve", "request_changes"):
        return {"verdict": "request_changes", "summary": f"The security review gave no verdict: {answer[:500]}"}
    return parsed


builder = StateGraph(State)
builder.add_node("assess", assess)
builder.add_node("review", review)
builder.add_edge(START, "assess")
builder.add_edge("assess", "review")
builder.add_edge("review", END)
graph = builder.compile()
