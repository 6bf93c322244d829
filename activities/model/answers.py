"""A turn's reads inside its model turn, and the model's answer kept so that a retry never asks twice.

A reply whose tool calls only read the workspace (contracts.tools.READ_TOOLS) has them run by the
model-turn activity itself, after the model answered (ModelTurnInput.reads): one activity for the
turn instead of one more local activity, workflow activation and marker per call. But a worker that
dies during those reads would make the retry ask the model again, and pay for an answer already
given. So the answer is kept on the run's object store while the reads run (the turn ends only when
both have), under a key made from the turn's input (the same for every attempt of the turn, and for
no other turn), and a retry takes it from there.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

from temporalio.exceptions import ApplicationError

from contracts.model import Block, ModelResponse, ModelTurnInput, ReadScope, result_block
from contracts.tools import READ_TOOLS, ToolCallInput, ToolCallResult
from storage.store import ObjectMissing, ObjectStore


class RunTool(Protocol):
    """A workspace tool's answer (ToolActivities.answer): by key when long, or whole (`by_key=False`)."""

    def __call__(self, call: ToolCallInput, *, by_key: bool = True) -> Awaitable[ToolCallResult]: ...


# A read that keeps failing (the store or git unreachable) fails the turn, whose retry reads again from
# the kept answer, until the turn's attempt READ_ATTEMPTS: then the model reads why, as it does when a
# workspace tool's own retries (workflows/activity_calls.TOOL_RETRY, 3 attempts) are spent.
READ_ATTEMPTS = 3


class AnswerLedger:
    """Model answers on the object store, by the turn they answer."""

    def __init__(self, store: ObjectStore, prefix: str = "answers") -> None:
        self._store = store
        self._prefix = prefix

    def _object(self, inp: ModelTurnInput) -> str:
        digest = hashlib.sha256(inp.model_dump_json().encode()).hexdigest()
        return f"{self._prefix}/{digest[:2]}/{digest}"

    async def get(self, inp: ModelTurnInput) -> ModelResponse | None:
        try:
            return ModelResponse.model_validate_json(await self._store.get_async(self._object(inp)))
        except ObjectMissing:
            return None

    async def put(self, inp: ModelTurnInput, answer: ModelResponse) -> None:
        await self._store.put_async(self._object(inp), answer.model_dump_json().encode())


def read_calls(content: list[Block], scope: ReadScope | None) -> list[Block] | None:
    """The reply's tool calls when there are some and each is a read `scope` allows (`submit` aside);
    None when the workflow must run them (a write, a command, a tool out of scope, or no scope)."""
    if scope is None:
        return None
    calls = [b for b in content if b.get("type") == "tool_use" and b.get("name") != "submit"]
    allowed = READ_TOOLS.intersection(scope.tools)
    if not calls or any(call.get("name") not in allowed for call in calls):
        return None
    return calls


@dataclass(frozen=True)
class TurnReads:
    """How a model turn runs its reply's reads: the workspace tool (ToolActivities.answer), and the
    ledger its answer is kept in meanwhile."""

    run_tool: RunTool
    answers: AnswerLedger

    async def run(
        self, inp: ModelTurnInput, scope: ReadScope, calls: list[Block], attempt: int, new_answer: ModelResponse | None
    ) -> list[Block]:
        """The tool_result blocks of `calls`, in their order (run side by side, as the workflow would);
        `attempt`: the turn's (see READ_ATTEMPTS). A `new_answer` (None: the turn's answer was kept by an
        earlier attempt) is kept while they run; neither is left running when either fails, so a retry
        finds the answer if it was kept at all."""
        if new_answer is None:
            return await self._read(inp, scope, calls, attempt)
        kept, results = await asyncio.gather(
            self.answers.put(inp, new_answer), self._read(inp, scope, calls, attempt), return_exceptions=True
        )
        for outcome in (kept, results):
            if isinstance(outcome, BaseException):
                raise outcome
        assert isinstance(results, list)
        return results

    async def _read(self, inp: ModelTurnInput, scope: ReadScope, calls: list[Block], attempt: int) -> list[Block]:
        """The results, each read's failure the model's to read once it is final or the attempts are spent."""

        async def one(call: Block) -> Block:
            use_id, name = str(call.get("id")), str(call.get("name"))
            req = ToolCallInput(
                role=inp.role, run_id=inp.run_id, tool_use_id=use_id, name=name, input=call.get("input") or {},
                workspace=scope.workspace,
            )  # fmt: skip
            try:
                result = await self.run_tool(req, by_key=not scope.into_transcript)
            except ApplicationError as err:
                if not err.non_retryable and attempt < READ_ATTEMPTS:
                    raise
                return result_block(use_id, f"{name} failed: {err}", is_error=True)
            return result_block(
                result.tool_use_id, result.content, is_error=result.is_error, content_key=result.content_key
            )

        return list(await asyncio.gather(*(one(call) for call in calls)))
