"""Claude through the `anthropic` SDK: one Messages API call per model turn.

The SDK's own retries are off so Temporal owns them: every failure becomes an ApplicationError
classified by `policy.retry.classify_http` (retry-after → next_retry_delay; 4xx that a retry can't
fix → non-retryable). The stable prefix — system prompt and tool definitions — carries
`cache_control` breakpoints and is built identically every turn, so later turns read it from cache.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import anthropic
import structlog
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


class AnthropicProvider:
    def __init__(self, client: anthropic.AsyncAnthropic, prices: PriceTable) -> None:
        self._client = client
        self._prices = prices

    async def complete(self, req: ModelRequest) -> ModelResponse:
        try:
            # Streamed, so a long answer never hits an HTTP read timeout; the activity heartbeats meanwhile.
            async with self._client.messages.stream(
                model=req.model.model,
                max_tokens=MAX_TOKENS,
                system=system_blocks(req.system),  # type: ignore[arg-type]  # wire-shaped dicts
                tools=cached_tools(req.tools),  # type: ignore[arg-type]
                messages=cached_messages(req.messages),  # type: ignore[arg-type]
            ) as stream:
                message = await stream.get_final_message()
        except anthropic.APIError as err:
            raise to_application_error(err) from None
        usage = Usage(
            input_tokens=message.usage.input_tokens,
            output_tokens=message.usage.output_tokens,
            cache_creation_input_tokens=message.usage.cache_creation_input_tokens or 0,
            cache_read_input_tokens=message.usage.cache_read_input_tokens or 0,
        )
        content: list[Block] = [block.model_dump(mode="json", exclude_none=True) for block in message.content]
        return ModelResponse(
            content=content,
            stop_reason=message.stop_reason,
            usage=usage,
            model=message.model,
            cost_usd=self._cost(message.model, usage),
        )

    def _cost(self, model: str, usage: Usage) -> float:
        cost = self._prices.cost(model, usage)
        if cost is None:
            _log.warning("no price for model; its cost is counted as 0", model=model, hint="set FORGEFLOW_PRICES")
            return 0.0
        return cost
