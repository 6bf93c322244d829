"""A loopback JSON-over-HTTP server: queued replies per request, every request recorded."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from testkit.loopback._server import LoopbackServer


@dataclass
class JsonReply:
    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    path: str
    body: Any
    headers: dict[str, str]


class JsonHandler(BaseHTTPRequestHandler):
    """A handler that answers each request in one piece (with content-length) and logs nothing."""

    def send_body(self, status: int, data: bytes, kind: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("content-type", kind)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_json(self, status: int, payload: Any, headers: dict[str, str], kind: str = "application/json") -> None:
        self.send_body(status, json.dumps(payload).encode(), kind, headers)

    def log_message(self, *args: object) -> None:
        pass


class JsonLoopback(LoopbackServer):
    def __init__(self, fallback: JsonReply | None = None) -> None:
        self.replies: list[JsonReply] = []
        self.requests: list[Request] = []
        self.fallback = fallback or JsonReply({"error": "no reply queued"}, status=500)
        super().__init__(self._handler())

    def _next(self, request: Request) -> JsonReply:
        with self._lock:
            self.requests.append(request)
            return self.replies.pop(0) if self.replies else self.fallback

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        loopback = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = loopback._next(Request("POST", self.path, json.loads(raw or b"null"), headers))
                self.send_json(reply.status, reply.body, reply.headers)

        return Handler
