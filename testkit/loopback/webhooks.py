"""Delivers webhooks as GitHub does: a JSON POST signed with the hook's secret, one delivery id each.

The payloads come from `GitHubLoopback` (`comment`, `label_issue`, `review`). Each delivery is kept
with the exact bytes sent, the receiver's status and how long it took to answer (GitHub gives up
after 10 seconds and counts the delivery as failed).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

GITHUB_TIMEOUT = 10.0  # seconds GitHub waits for a receiver to answer


@dataclass
class Delivery:
    event: str
    delivery_id: str
    body: bytes  # exactly what was sent (and signed)
    headers: dict[str, str]
    status: int | None  # None: no answer (the request failed or timed out)
    elapsed: float  # seconds from sending to the answer


class WebhookSender:
    def __init__(
        self,
        url: str,
        secret: str,
        *,
        hook_id: int = 1,
        target: tuple[str, int] = ("repository", 1),
        timeout: float = GITHUB_TIMEOUT,
    ) -> None:
        """`secret` "" is a hook without one: its deliveries carry no signature. `target` is the
        (type, id) the hook was installed on, sent in `X-GitHub-Hook-Installation-Target-*`."""
        self.url, self.secret, self.hook_id, self.target, self.timeout = url, secret, hook_id, target, timeout
        self.deliveries: list[Delivery] = []

    def request(
        self, event: str, payload: dict[str, Any], delivery_id: str | None = None, signature: str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers of one delivery. `signature` replaces the computed `X-Hub-Signature-256`
        (and drops the legacy SHA-1 one); "" sends the delivery unsigned."""
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/loopback",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
            "X-GitHub-Hook-ID": str(self.hook_id),
            "X-GitHub-Hook-Installation-Target-Type": self.target[0],
            "X-GitHub-Hook-Installation-Target-ID": str(self.target[1]),
        }
        if signature:
            headers["X-Hub-Signature-256"] = signature
        elif signature is None and self.secret:
            headers["X-Hub-Signature"] = "sha1=" + hmac.new(self.secret.encode(), body, hashlib.sha1).hexdigest()
            headers["X-Hub-Signature-256"] = (
                "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            )
        return body, headers

    def deliver(
        self, event: str, payload: dict[str, Any], delivery_id: str | None = None, signature: str | None = None
    ) -> httpx.Response:
        """POST one delivery and wait for the answer (at most `timeout`, then httpx raises). Passing the
        `delivery_id` of an earlier delivery is a redelivery: GitHub resends the same id."""
        body, headers = self.request(event, payload, delivery_id, signature)
        started = time.monotonic()
        try:
            response = httpx.post(self.url, content=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError:
            self._record(event, body, headers, None, started)
            raise
        self._record(event, body, headers, response.status_code, started)
        return response

    async def deliver_async(
        self, event: str, payload: dict[str, Any], delivery_id: str | None = None, signature: str | None = None
    ) -> httpx.Response:
        """`deliver` without blocking the event loop (for a receiver served on the same loop)."""
        body, headers = self.request(event, payload, delivery_id, signature)
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            try:
                response = await client.post(self.url, content=body, headers=headers)
            except httpx.HTTPError:
                self._record(event, body, headers, None, started)
                raise
        self._record(event, body, headers, response.status_code, started)
        return response

    def _record(self, event: str, body: bytes, headers: dict[str, str], status: int | None, started: float) -> None:
        delivery_id = headers["X-GitHub-Delivery"]
        self.deliveries.append(Delivery(event, delivery_id, body, headers, status, time.monotonic() - started))
