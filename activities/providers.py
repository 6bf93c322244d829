"""The model-provider interface: one request in, one assistant message out."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, Field

from contracts.agents import ModelSpec, Role
from contracts.model import Block, Message
from contracts.usage import Usage


class ModelRequest(BaseModel):
    run_id: str
    role: Role
    invocation: int
    turn: int
    model: ModelSpec
    system: str
    tools: list[dict[str, Any]]
    messages: list[Message]


class ModelResponse(BaseModel):
    content: list[Block]
    stop_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    model: str
    cost_usd: float = 0.0
    scripted: bool = False


class ModelProvider(Protocol):
    async def complete(self, req: ModelRequest) -> ModelResponse: ...
