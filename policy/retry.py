"""Whether an HTTP failure of an external API is worth retrying, and when. Pure.

Temporal owns retries: providers' SDK retries are off, and their errors become
ApplicationError(non_retryable=..., next_retry_delay=...) through this one function.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from pydantic import BaseModel

MAX_DELAY_SECONDS = 600.0
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})

_NOT_RETRYABLE_WHY = {
    400: "the request was rejected as malformed",
    401: "authentication failed: check the API key in the worker's environment",
    403: "permission denied for this key",
    404: "not found: check the model id (retired?) or the base URL",
    413: "the request is too large",
    422: "the request was not processable",
}


class RetryDecision(BaseModel):
    retryable: bool
    delay_seconds: float | None = None
    reason: str


def retry_after_seconds(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """The server's requested wait: `retry-after-ms`, `retry-after` in seconds or as an HTTP date."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if (ms := lowered.get("retry-after-ms")) is not None:
        try:
            return min(max(float(ms) / 1000, 0.0), MAX_DELAY_SECONDS)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_DELAY_SECONDS)


def classify_http(status: int | None, headers: Mapping[str, str], service: str) -> RetryDecision:
    """`status` None means no response at all (connection error, timeout): always retryable."""
    if status is None:
        return RetryDecision(retryable=True, reason=f"{service}: no response (connection error or timeout)")
    if status in RETRYABLE_STATUSES or status >= 500:
        delay = retry_after_seconds(headers)
        return RetryDecision(retryable=True, delay_seconds=delay, reason=f"{service}: HTTP {status}, will retry")
    why = _NOT_RETRYABLE_WHY.get(status, "the request was refused")
    return RetryDecision(retryable=False, reason=f"{service}: HTTP {status}: {why}")


def classify_github(status: int | None, headers: Mapping[str, str], now: datetime | None = None) -> RetryDecision:
    """GitHub's rate limits arrive as 403 or 429: with `retry-after` (secondary limit) or with
    `x-ratelimit-remaining: 0` (primary limit, wait until `x-ratelimit-reset`). Any other 403 is a
    missing permission, which no retry fixes."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if status in (403, 429):
        delay = retry_after_seconds(lowered, now)
        if delay is None and lowered.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in lowered:
            reset = datetime.fromtimestamp(float(lowered["x-ratelimit-reset"]), UTC)
            delay = min(max((reset - (now or datetime.now(UTC))).total_seconds(), 0.0) + 1, MAX_DELAY_SECONDS)
        if delay is not None:
            return RetryDecision(retryable=True, delay_seconds=delay, reason=f"github: HTTP {status}: rate limited")
        if status == 403:
            return RetryDecision(retryable=False, reason="github: HTTP 403: the token lacks a permission for this")
    return classify_http(status, headers, "github")
