"""The scripted provider: replays a recorded conversation instead of calling Claude.

A script is a JSON file in the Messages API's response shape, indexed by role, invocation and turn:

    {"description": "...", "model": "scripted-replay",
     "agents": {"coder": [{"turns": [{"content": [...], "stop_reason": "tool_use",
                                      "usage": {...}, "expect": ["text the context must hold"]}]}]}}

`expect` lists strings that must appear in the conversation so far (e.g. a failing test's name in
the coder's second round): if the run diverged from the recording, the replay stops with a clear
error instead of answering nonsense. Every answer is labelled as a replay.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.model import Block, ModelRequest, ModelResponse
from contracts.usage import Usage

REPLAY_LABEL = "scripted replay (no API calls)"


class ScriptTurn(BaseModel):
    content: list[Block]
    stop_reason: str = "tool_use"
    usage: Usage = Field(default_factory=Usage)
    expect: list[str] = Field(default_factory=list)


class ScriptRun(BaseModel):
    turns: list[ScriptTurn]


class Script(BaseModel):
    description: str = ""
    model: str = "scripted-replay"
    agents: dict[str, list[ScriptRun]]


def _fail(message: str, kind: str = "ScriptDiverged") -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


def load_script(path: str) -> Script:
    try:
        return Script.model_validate_json(Path(path).read_bytes())
    except FileNotFoundError:
        raise _fail(f"model script {path} not found on this worker", "ScriptNotFound") from None
    except ValidationError as err:
        raise _fail(f"model script {path} is not a valid script: {err}", "InvalidInput") from None


def pick_turn(script: Script, req: ModelRequest) -> ScriptTurn:
    """The turn recorded for this request: by agent (`reviewer:security` for an extra reviewer, else the
    role), its run in this workflow run, and the turn."""
    who = f"{req.role}:{req.agent}" if req.agent else req.role
    runs = script.agents.get(who, [])
    if req.invocation >= len(runs):
        raise _fail(
            f"the script has no run {req.invocation + 1} for the {who}; the run went further than the recording"
        )
    turns = runs[req.invocation].turns
    if req.turn >= len(turns):
        raise _fail(f"the script's {who} run {req.invocation + 1} has no turn {req.turn + 1}")
    return turns[req.turn]


def check_expectations(turn: ScriptTurn, req: ModelRequest) -> None:
    seen = json.dumps([m.model_dump() for m in req.messages if m.role == "user"], ensure_ascii=False)
    missing = [text for text in turn.expect if text not in seen]
    if missing:
        raise _fail(
            f"replay diverged at {req.role} run {req.invocation + 1} turn {req.turn + 1}: "
            f"the conversation does not contain {missing!r}"
        )


class ScriptedProvider:
    def __init__(self, delay_seconds: float = 0.0, ledger: Path | None = None) -> None:
        """`delay_seconds`: a pause before each answer (tests widen crash windows with it); `ledger`:
        a file to append each request to (the worker passes FORGEFLOW_SCRIPT_* settings)."""
        self._delay_seconds = delay_seconds
        self._ledger = ledger
        self._scripts: dict[str, Script] = {}

    async def complete(self, req: ModelRequest) -> ModelResponse:
        if req.model.script is None:
            raise _fail("the scripted provider needs model_script", "InvalidInput")
        script = self._scripts.get(req.model.script) or load_script(req.model.script)
        self._scripts[req.model.script] = script
        turn = pick_turn(script, req)
        check_expectations(turn, req)
        self._record(req)
        if self._delay_seconds:
            await asyncio.sleep(self._delay_seconds)
        return ModelResponse(
            content=turn.content,
            stop_reason=turn.stop_reason,
            usage=turn.usage,
            model=script.model,
            scripted=True,
        )

    def _record(self, req: ModelRequest) -> None:
        """Tests read this ledger to prove that no completed turn was requested twice."""
        ledger = self._ledger
        if ledger is None:
            return
        info = activity.info() if activity.in_activity() else None
        line = {
            "run_id": req.run_id,
            "role": req.role,
            "agent": req.agent,
            "invocation": req.invocation,
            "turn": req.turn,
            "attempt": info.attempt if info else None,
        }
        with ledger.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")
