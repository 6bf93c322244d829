"""The codec server: the Temporal Web UI and `temporal --codec-endpoint` send it encrypted payloads
and get them back decrypted, so authorised people read runs in plain text while the history
itself stays encrypted.

It speaks Temporal's remote-codec protocol: POST /decode and /encode with a JSON `Payloads` body
(proto3 JSON). CORS lets the configured UI origins call it from the browser; with
FORGEFLOW_CODEC_TOKEN set, every call must bring `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import structlog
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from payloads.codec import AesGcmCodec, CodecError

log = structlog.get_logger(__name__)
MAX_BODY = 64 * 1024**2


def make_server(
    codec: AesGcmCodec, host: str, port: int, *, token: str | None, origins: Sequence[str]
) -> ThreadingHTTPServer:
    operations: dict[str, Callable[[Sequence[Payload]], list[Payload]]] = {
        "/decode": codec.decrypt,
        "/encode": codec.encrypt,
    }

    class Handler(BaseHTTPRequestHandler):
        server_version = "forgeflow-codec"

        def log_message(self, fmt: str, *args: object) -> None:  # structlog, not stderr lines
            log.info("codec request", line=fmt % args)

        def _cors(self) -> None:
            origin = self.headers.get("Origin")
            if origin is not None and origin in origins:
                self.send_header("Access-Control-Allow-Origin", origin)
                self.send_header("Access-Control-Allow-Credentials", "true")
                self.send_header("Vary", "Origin")

        def _reply(self, status: HTTPStatus, body: bytes = b"", content_type: str = "application/json") -> None:
            self.send_response(status)
            self._cors()
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_OPTIONS(self) -> None:  # the UI's CORS preflight
            self.send_response(HTTPStatus.OK)
            self._cors()
            self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
            self.send_header("Access-Control-Allow-Headers", "Content-Type, X-Namespace, Authorization")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            operation = next((op for suffix, op in operations.items() if path.endswith(suffix)), None)
            if operation is None:
                self._reply(HTTPStatus.NOT_FOUND, b'{"message": "POST /decode or /encode"}')
                return
            if token is not None and not hmac.compare_digest(
                self.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()
            ):
                self._reply(HTTPStatus.UNAUTHORIZED, b'{"message": "a bearer token is required"}')
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
                return
            try:
                payloads = json_format.Parse(self.rfile.read(length), Payloads())
                result = Payloads(payloads=operation(payloads.payloads))
            except (json_format.ParseError, CodecError) as err:
                self._reply(HTTPStatus.BAD_REQUEST, json.dumps({"message": str(err)}).encode())
                return
            self._reply(HTTPStatus.OK, json_format.MessageToJson(result).encode())

    return ThreadingHTTPServer((host, port), Handler)
