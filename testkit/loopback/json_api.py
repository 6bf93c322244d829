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

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = loopback._next(Request("POST", self.path, json.loads(raw or b"null"), headers))
                data = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler
