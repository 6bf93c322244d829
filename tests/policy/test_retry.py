from __future__ import annotations

from datetime import UTC, datetime

import pytest

from policy.retry import classify_github, classify_http, retry_after_seconds

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "headers", "retryable", "delay", "says"),
    [
        (None, {}, True, None, "no response"),
        (429, {"retry-after": "7"}, True, 7.0, "HTTP 429"),
        (429, {"Retry-After-Ms": "1500"}, True, 1.5, "HTTP 429"),
        (529, {}, True, None, "HTTP 529"),
        (500, {}, True, None, "HTTP 500"),
        (503, {"retry-after": "100000"}, True, 600.0, "HTTP 503"),
        (408, {}, True, None, "HTTP 408"),
        (400, {}, False, None, "malformed"),
        (401, {}, False, None, "API key"),
        (403, {"retry-after": "5"}, False, None, "permission"),
        (404, {}, False, None, "model id"),
        (422, {}, False, None, "not processable"),
        (418, {}, False, None, "refused"),
    ],
)
def test_classify_http(
    status: int | None, headers: dict[str, str], retryable: bool, delay: float | None, says: str
) -> None:
    decision = classify_http(status, headers, "anthropic")
    assert (decision.retryable, decision.delay_seconds) == (retryable, delay)
    assert says in decision.reason and decision.reason.startswith("anthropic")


def test_retry_after_http_date() -> None:
    assert retry_after_seconds({"retry-after": "Thu, 01 Jan 2026 12:00:30 GMT"}, now=NOW) == 30.0
    assert retry_after_seconds({"retry-after": "soon"}) is None


@pytest.mark.parametrize(
    ("status", "headers", "retryable", "delay"),
    [
        (403, {"retry-after": "60"}, True, 60.0),
        (429, {"Retry-After": "5"}, True, 5.0),
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW.timestamp()) + 120)}, True, 121.0),
        (403, {"x-ratelimit-remaining": "12"}, False, None),
        (403, {}, False, None),
        (404, {}, False, None),
        (502, {}, True, None),
        (None, {}, True, None),
    ],
)
def test_classify_github(status: int | None, headers: dict[str, str], retryable: bool, delay: float | None) -> None:
    decision = classify_github(status, headers, now=NOW)
    assert (decision.retryable, decision.delay_seconds) == (retryable, delay)
    if status == 403 and not retryable:
        assert "permission" in decision.reason
