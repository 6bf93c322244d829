"""Build scripted conversations (the replay provider's file format) for tests."""

from __future__ import annotations

import json
from itertools import count
from pathlib import Path
from typing import Any

from contracts.agents import AgentInput, ModelSpec, Role, Workspace
from testkit.tools import git

_ids = count(1)


def _use(name: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_{next(_ids):04d}", "name": name, "input": tool_input}


def turn(*uses: dict[str, Any], text: str = "", expect: list[str] | None = None) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    return {
        "content": [*content, *uses],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 100, "output_tokens": 20},
        "expect": expect or [],
    }


def tool(name: str, **tool_input: Any) -> dict[str, Any]:
    return _use(name, tool_input)


def submit(**result: Any) -> dict[str, Any]:
    return _use("submit", result)


def planner_run() -> dict[str, Any]:
    plan = {
        "summary": "Add subtract",
        "tasks": [{"id": "t1", "title": "add subtract()", "files": ["calc/__init__.py"]}],
    }
    return {"turns": [turn(tool("list_files")), turn(submit(**plan))]}


def coder_run(content: str, *, expect: list[str] | None = None) -> dict[str, Any]:
    return {
        "turns": [
            turn(tool("read_file", path="calc/__init__.py"), expect=expect),
            turn(tool("write_file", path="calc/__init__.py", content=content)),
            turn(submit(summary="implemented", commit_message="Add subtract")),
        ]
    }


def tester_run() -> dict[str, Any]:
    return {"turns": [turn(tool("run_tests")), turn(submit(summary="ran the suite"))]}


tester_run.__test__ = False  # type: ignore[attr-defined]  # a script builder, not a pytest test


def reviewer_run(verdict: str = "approve", comments: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    review = {"verdict": verdict, "summary": f"review: {verdict}", "comments": comments or []}
    return {"turns": [turn(tool("view_diff")), turn(submit(**review))]}


def write_script(path: Path, agents: dict[str, list[dict[str, Any]]]) -> str:
    path.write_text(json.dumps({"description": "test script", "agents": agents}, indent=1))
    return str(path)


def scripted(script: str) -> ModelSpec:
    return ModelSpec(provider="scripted", model="scripted-replay", script=script)


def agent_input(
    role: Role, repo: Path, model: ModelSpec, *, brief: str = "Make the change.", **extra: Any
) -> AgentInput:
    """One agent run on the repository's HEAD, as a test starts it directly."""
    base = git(repo, "rev-parse", "HEAD")
    workspace = Workspace(repo=str(repo), base_sha=base, origin_sha=base)
    return AgentInput(
        role=role, run_id=f"run-{role}", invocation=0, brief=brief, workspace=workspace, model=model, **extra
    )
