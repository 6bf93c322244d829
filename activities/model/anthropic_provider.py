"""Claude through the `anthropic` SDK: one Messages API call per model turn.

The SDK's own retries are off so Temporal owns them: every failure becomes an ApplicationError
classified by `policy.retry.classify_http` (retry-after → next_retry_delay; 4xx that a retry can't
fix → non-retryable). The stable prefix — system prompt and tool definitions — carries
`cache_control` breakpoints and is built identically every turn, so later turns read it from cache.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, cast

import anthropic
import structlog
from anthropic import AsyncStream
from anthropic.types import RawMessageStreamEvent
from temporalio.exceptions import ApplicationError

from contracts.model import Block, Message, ModelRequest, ModelResponse
from contracts.usage import Usage
from policy.pricing import PriceTable
from policy.retry import classify_http

_log = structlog.get_logger(__name__)
MAX_TOKENS = 8192
_CACHE = {"type": "ephemeral"}
_ERROR_TYPES = {401: "AuthenticationFailed", 403: "PermissionDenied", 404: "ModelNotFound"}


def system_blocks(system: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": system, "cache_control": _CACHE}]


def cached_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A breakpoint on the last tool caches system + all tools as one prefix."""
    if not tools:
        return tools
    return [*tools[:-1], {**tools[-1], "cache_control": _CACHE}]


def cached_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """A breakpoint on the newest block, so the next turn reads the whole conversation from cache."""
    wire = [m.model_dump() for m in messages]
    if wire and wire[-1]["content"]:
        last = wire[-1]["content"]
        last[-1] = {**last[-1], "cache_control": _CACHE}
    return wire


# An error event inside a stream arrives with HTTP 200: its type says what the status would be.
_STATUS_OF_ERROR_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def _status(err: anthropic.APIError) -> int | None:
    if not isinstance(err, anthropic.APIStatusError):
        return None  # connection error or timeout: no response
    if err.status_code >= 400:
        return err.status_code
    body = err.body if isinstance(err.body, dict) else {}
    error = body.get("error")
    kind = error.get("type") if isinstance(error, dict) else None
    return _STATUS_OF_ERROR_TYPE.get(str(kind), 500)


def to_application_error(err: anthropic.APIError) -> ApplicationError:
    status = _status(err)
    headers = dict(err.response.headers) if isinstance(err, anthropic.APIStatusError) else {}
    decision = classify_http(status, headers, "anthropic")
    delay = timedelta(seconds=decision.delay_seconds) if decision.delay_seconds is not None else None
    kind = _ERROR_TYPES.get(status or 0, "ModelApiError" if decision.retryable else "ModelRequestRejected")
    return ApplicationError(
        f"{decision.reason} ({err.message})",
        type=kind,
        non_retryable=not decision.retryable,
        next_retry_delay=delay,
    )


class _Answer:
    """One message put together from its stream's events: text joined once, a tool call's input parsed
    once, when its block ends (or never, if the answer was cut off inside it: see `content`)."""

    def __init__(self) -> None:
        self.model = ""
        self.stop_reason: str | None = None
        self.usage = Usage()
        self._blocks: list[Block] = []
        self._parts: dict[int, list[str]] = {}  # text or input JSON received so far, per open block

    def add(self, event: RawMessageStreamEvent) -> None:
        match event.type:
            case "message_start":
                self.model = event.message.model
                self.usage = _usage(event.message.usage, Usage())
            case "content_block_start":
                self._blocks.append(event.content_block.model_dump(mode="json", exclude_none=True))
                self._parts[event.index] = []
            case "content_block_delta":
                delta = event.delta
                if delta.type == "text_delta":
                    self._parts[event.index].append(delta.text)
                elif delta.type == "input_json_delta":
                    self._parts[event.index].append(delta.partial_json)
                elif delta.type == "thinking_delta":
                    block = self._blocks[event.index]
                    block["thinking"] = str(block.get("thinking", "")) + delta.thinking
                elif delta.type == "signature_delta":
                    self._blocks[event.index]["signature"] = delta.signature
                elif delta.type == "citations_delta":
                    block = self._blocks[event.index]
                    block["citations"] = [*block.get("citations", []), delta.citation.model_dump(mode="json")]
            case "content_block_stop":
                self._close(event.index)
            case "message_delta":
                self.stop_reason = event.delta.stop_reason
                self.usage = _usage(event.usage, self.usage)

    def _close(self, index: int) -> None:
        block, parts = self._blocks[index], self._parts.pop(index, [])
        if block.get("type") == "text":
            block["text"] = str(block.get("text", "")) + "".join(parts)
        elif "input" in block and parts:
            try:
                block["input"] = json.loads("".join(parts))
            except json.JSONDecodeError:  # cut off mid-call (max_tokens): the model turn drops the call
                block["input"] = {}

    def content(self) -> list[Block]:
        for index in list(self._parts):  # blocks the stream never closed (cut off)
            self._close(index)
        return self._blocks


def _usage(reported: Any, before: Usage) -> Usage:
    """Usage after a message_start or message_delta: the counts it carries are totals so far; one it
    leaves out keeps its earlier value."""

    def count(name: str, earlier: int) -> int:
        value = getattr(reported, name, None)
        return int(value) if value is not None else earlier

    return Usage(
        input_tokens=count("input_tokens", before.input_tokens),
        output_tokens=count("output_tokens", before.output_tokens),
        cache_creation_input_tokens=count("cache_creation_input_tokens", before.cache_creation_input_tokens),
        cache_read_input_tokens=count("cache_read_input_tokens", before.cache_read_input_tokens),
    )


class AnthropicProvider:
    def __init__(self, client: anthropic.AsyncAnthropic, prices: PriceTable) -> None:
        self._client = client
        self._prices = prices

    async def complete(self, req: ModelRequest) -> ModelResponse:
        answer = _Answer()
        try:
            # Streamed, so a long answer never hits an HTTP read timeout; the activity heartbeats meanwhile.
            # The raw events, put together here: the SDK's own accumulator re-parses a tool call's whole
            # input at every delta, which costs more than the call itself on a busy worker (issue 14).
            stream = await self._client.messages.create(
                model=req.model.model,
                max_tokens=MAX_TOKENS,
                system=system_blocks(req.system),  # type: ignore[arg-type]  # wire-shaped dicts
                tools=cached_tools(req.tools),  # type: ignore[arg-type]
                messages=cached_messages(req.messages),  # type: ignore[arg-type]
                stream=True,
            )
            # stream=True always gives a stream; the wire-shaped arguments above hide which overload it is.
            events = cast(AsyncStream[RawMessageStreamEvent], stream)
            async with events:
                async for event in events:
                    answer.add(event)
        except anthropic.APIError as err:
            raise to_application_error(err) from None
        usage = answer.usage
        return ModelResponse(
            content=answer.content(),
            stop_reason=answer.stop_reason,
            usage=usage,
            model=answer.model,
            cost_usd=self._cost(answer.model, usage),
        )

    def _cost(self, model: str, usage: Usage) -> float:
        cost = self._prices.cost(model, usage)
        if cost is None:
            _log.warning("no price for model; its cost is counted as 0", model=model, hint="set FORGEFLOW_PRICES")
            return 0.0
        return cost
