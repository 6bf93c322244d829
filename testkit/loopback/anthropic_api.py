"""A loopback server speaking Anthropic's Messages API: replies and errors in the real wire shape.

Tests queue replies (messages or errors) and read back every request the real `anthropic` client
sent, so retries, cache breakpoints and headers are checked on the wire. Benchmarks instead compute
each reply from its request (`respond`) and answer after a fixed `latency`, many requests at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from itertools import count
from typing import Any

from testkit.loopback._server import LoopbackServer

_ids = count(1)
# Connections waiting to be accepted: a hundred clients calling at once must not overflow the
# socketserver default of 5 (a dropped SYN is retried after a second, which would read as latency).
BACKLOG = 1024


@dataclass
class Reply:
    """A message (status 200) or an error (status >= 400) in Anthropic's JSON shapes."""

    content: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = "tool_use"
    usage: dict[str, int] = field(default_factory=lambda: {"input_tokens": 10, "output_tokens": 5})
    status: int = 200
    error_type: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    stream_error: str = ""  # when streaming: fail with this error type after the message starts

    @classmethod
    def error(cls, status: int, error_type: str, **headers: str) -> Reply:
        return cls(status=status, error_type=error_type, headers={k.replace("_", "-"): v for k, v in headers.items()})

    def body(self, model: str) -> dict[str, Any]:
        if self.status >= 400:
            return {"type": "error", "error": {"type": self.error_type, "message": f"loopback {self.error_type}"}}
        return {
            "id": f"msg_loop{next(_ids):04d}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": self.content,
            "stop_reason": self.stop_reason,
            "stop_sequence": None,
            "usage": self.usage,
        }


@dataclass
class Seen:
    body: dict[str, Any]
    headers: dict[str, str]


class PromptCache:
    """Prompt caching as the Messages API does it, by content: each `cache_control` breakpoint marks
    a prefix (tools → system → messages) to write; a request reads the longest prefix written
    before, checked at every block boundary up to its last breakpoint (the marker itself is not part
    of the content). Tokens are estimated as characters / 4."""

    def __init__(self) -> None:
        self._written: set[str] = set()

    def usage(self, body: dict[str, Any]) -> dict[str, int]:
        marked = _prefix_blocks(body)
        blocks = [_unmarked(b) for b in marked]
        cuts = [i + 1 for i, block in enumerate(marked) if isinstance(block, dict) and "cache_control" in block]
        total = _tokens(blocks)
        if not cuts:
            return {"input_tokens": total, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}

        def key(n: int) -> str:
            return json.dumps(blocks[:n], sort_keys=True)

        read = max((_tokens(blocks[:n]) for n in range(1, cuts[-1] + 1) if key(n) in self._written), default=0)
        written = 0
        if key(cuts[-1]) not in self._written:
            written = _tokens(blocks[: cuts[-1]]) - read
            self._written.update(key(n) for n in cuts)
        return {
            "input_tokens": total - read - written,
            "cache_read_input_tokens": read,
            "cache_creation_input_tokens": written,
        }


def _unmarked(block: Any) -> Any:
    return {k: v for k, v in block.items() if k != "cache_control"} if isinstance(block, dict) else block


def _prefix_blocks(body: dict[str, Any]) -> list[Any]:
    system = body.get("system") or []
    system_blocks = [{"type": "text", "text": system}] if isinstance(system, str) else list(system)
    message_blocks = [
        block
        for message in body.get("messages", [])
        for block in (
            [{"type": "text", "text": message["content"]}]
            if isinstance(message["content"], str)
            else message["content"]
        )
    ]
    return [*body.get("tools", []), *system_blocks, *message_blocks]


def _tokens(blocks: list[Any]) -> int:
    return len(json.dumps(blocks)) // 4


class AnthropicLoopback(LoopbackServer):
    def __init__(
        self,
        *,
        simulate_cache: bool = False,
        respond: Callable[[dict[str, Any]], Reply] | None = None,
        latency: float = 0.0,
    ) -> None:
        """With `simulate_cache`, replies' input/cache token counts come from PromptCache, not the script.
        With `respond`, each reply is `respond(request body)` instead of the next queued one; every
        reply is sent `latency` seconds after its request arrived (each request has its own thread)."""
        self.cache = PromptCache() if simulate_cache else None
        self.replies: list[Reply] = []
        self.requests: list[Seen] = []
        self.respond = respond
        self.latency = latency
        super().__init__(self._handler())
        self._server.socket.listen(BACKLOG)

    def _next(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        with self._lock:
            self.requests.append(Seen(body, headers))
            if self.respond is not None:
                reply = self.respond(body)
            elif not self.replies:
                return Reply.error(500, "api_error")
            else:
                reply = self.replies.pop(0)
            if self.cache is not None and reply.status == 200:
                reply.usage = {**reply.usage, **self.cache.usage(body)}
            return reply

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        loopback = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.rstrip("/") != "/v1/messages":
                    self._send(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}}, {})
                    return
                problem = conversation_problem(body.get("messages", []))
                if problem is not None:
                    error = {"type": "error", "error": {"type": "invalid_request_error", "message": problem}}
                    loopback.requests.append(Seen(body, {k.lower(): v for k, v in self.headers.items()}))
                    self._send(400, error, {})
                    return
                arrived = time.monotonic()
                reply = loopback._next(body, {k.lower(): v for k, v in self.headers.items()})
                time.sleep(max(0.0, arrived + loopback.latency - time.monotonic()))
                payload = reply.body(str(body.get("model", "")))
                if body.get("stream") and reply.status == 200:
                    self._stream(payload, reply.stream_error)
                else:
                    self._send(reply.status, payload, reply.headers)

            def _stream(self, message: dict[str, Any], error_type: str) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                for event in sse_events(message, error_type):
                    self.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
                    self.wfile.flush()

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("request-id", f"req_loop{next(_ids):04d}")
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:  # quiet
                pass

        return Handler


def sse_events(message: dict[str, Any], error_type: str = "") -> list[dict[str, Any]]:
    """A complete message as the Messages API streams it."""
    usage = dict(message["usage"])
    output_tokens = usage.pop("output_tokens", 0)
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    if error_type:
        return [*events, {"type": "error", "error": {"type": error_type, "message": f"loopback {error_type}"}}]
    for i, block in enumerate(message["content"]):
        if block["type"] == "text":
            events.append({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            events.append({"type": "content_block_start", "index": i, "content_block": {**block, "input": {}}})
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        events.append({"type": "content_block_delta", "index": i, "delta": delta})
        events.append({"type": "content_block_stop", "index": i})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": output_tokens},
        }
    )
    return [*events, {"type": "message_stop"}]


def conversation_problem(messages: list[dict[str, Any]]) -> str | None:
    """What the Messages API would reject: roles not alternating from a user turn, or a tool_use
    whose result is missing from the very next user message (or a result for no such call)."""
    for i, message in enumerate(messages):
        if message.get("role") != ("user" if i % 2 == 0 else "assistant"):
            return f"messages: roles must alternate starting with user (message {i})"
    for i in range(1, len(messages)):
        content = messages[i].get("content")
        blocks = content if isinstance(content, list) else []
        results = {b["tool_use_id"] for b in blocks if b.get("type") == "tool_result"}
        asked: set[str] = set()
        if messages[i]["role"] == "user":
            before = messages[i - 1].get("content")
            asked = {b["id"] for b in (before if isinstance(before, list) else []) if b.get("type") == "tool_use"}
            if results != asked:
                return f"messages.{i}: tool_result ids {sorted(results)} do not answer tool_use ids {sorted(asked)}"
    last = messages[-1] if messages else None
    if last is not None and last.get("role") == "assistant":
        return "the last message must come from the user"
    return None
