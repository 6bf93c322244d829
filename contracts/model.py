"""One model turn, in the Messages API's wire shape (text / tool_use / tool_result blocks)."""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from contracts.agents import ModelSpec, Role, Workspace
from contracts.usage import Usage
from contracts.versioning import DURABLE

Block = dict[str, Any]


# A tool_result block the workflow builds may carry CONTENT_KEY (a blob key) instead of `content`; the
# model-turn activity puts the blob's text in before anything else reads the block. Histories then
# hold a long tool answer once, by key, not twice inline (issue 14).
CONTENT_KEY = "content_key"


def result_block(tool_use_id: str, content: str, *, is_error: bool = False, content_key: str | None = None) -> Block:
    """A tool_result block: the content inline, or by `content_key` when the answer is in the blob store."""
    if content_key is not None:
        return {"type": "tool_result", "tool_use_id": tool_use_id, CONTENT_KEY: content_key, "is_error": is_error}
    return {"type": "tool_result", "tool_use_id": tool_use_id, "content": content, "is_error": is_error}


class Message(BaseModel):
    role: Literal["user", "assistant"]
    content: list[Block]


class ReadScope(BaseModel):
    """What a model turn needs to answer its reply's read-only tool calls itself: the agent's workspace,
    and which of contracts.tools.READ_TOOLS the agent may call (its role's, narrowed by the repository).
    When every tool call of the reply is one of `tools` (or `submit`), the activity runs them after the
    model's answer and returns their results (ModelTurnResult.read_results): a turn that only looks
    costs one activity, not one more local activity per call."""

    model_config = DURABLE

    workspace: Workspace
    tools: list[str]
    into_transcript: bool = Field(
        default=False,
        description="Append the results to the stored transcript as the next user message, and return only "
        "their number (ModelTurnResult.reads_in_transcript), so no result is in history; False: return them "
        "(ModelTurnResult.read_results), for the loop to send back in the next turn's new_messages.",
    )


class ModelTurnInput(BaseModel):
    """Only the new messages travel in history; the transcript so far is referenced by key.

    The activity loads the transcript from the blob store, appends `new_messages`, calls the model,
    appends its answer and stores the result under a new key — so each turn adds a bounded amount
    to workflow history instead of re-sending the whole conversation. When the transcript ends with a
    user message (the results of the turn's reads, ReadScope.into_transcript), a first new message of
    the user's joins it: the model reads one user message after each of its own.
    """

    model_config = DURABLE

    role: Role
    run_id: str
    invocation: int
    turn: int
    model: ModelSpec
    transcript_key: str | None = None
    new_messages: list[Message]
    commands: bool = Field(default=False, description="The role may run commands: its prompt and tools say so.")
    instructions: str | None = Field(default=None, description="The repository's guidance, added to the prompt.")
    tools: list[str] | None = Field(default=None, description="The subset of the role's tools offered; None: all.")
    agent: str | None = Field(default=None, description="An extra reviewer's name; None for the role's own agent.")
    reads: ReadScope | None = Field(default=None, description="Run the reply's read-only tool calls here; None: not.")


class ModelTurnResult(BaseModel):
    transcript_key: str
    content: list[Block]
    stop_reason: str | None = None
    model: str
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    scripted: bool = False
    read_results: list[Block] | None = Field(
        default=None, description="The tool_result blocks of the reply's calls, run here (ModelTurnInput.reads)."
    )
    reads_in_transcript: int = Field(
        default=0,
        description="How many of the reply's calls ran here with their results put in the transcript, as its "
        "last (user) message (ReadScope.into_transcript); the next turn's new_messages join that message.",
    )

    def tool_uses(self) -> list[Block]:
        return [b for b in self.content if b.get("type") == "tool_use"]

    def text(self) -> str:
        return "\n".join(str(b.get("text", "")) for b in self.content if b.get("type") == "text")


class ModelRequest(BaseModel):
    """What an activity hands a model provider: the whole transcript, tools and model for one call."""

    run_id: str
    role: Role
    invocation: int
    turn: int
    model: ModelSpec
    system: str
    tools: list[dict[str, Any]]
    messages: list[Message]
    agent: str | None = Field(default=None, description="An extra reviewer's name; None for the role's own agent.")


class ModelResponse(BaseModel):
    """One assistant message from a provider, with its usage and price (telemetry records it too)."""

    content: list[Block]
    stop_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    model: str
    cost_usd: float = 0.0
    scripted: bool = False


class ModelProvider(Protocol):
    """A worker's model provider (Claude, or a scripted replay): one request in, one assistant
    message out. The model turn activity and a LangGraph graph's calls both use it."""

    async def complete(self, req: ModelRequest) -> ModelResponse: ...
