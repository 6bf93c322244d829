"""The codec server: the Temporal Web UI and `temporal --codec-endpoint` send it encrypted payloads
and get them back decrypted, so authorised people read runs in plain text while the history
itself stays encrypted.

It speaks Temporal's remote-codec protocol: POST /decode and /encode with a JSON `Payloads` body
(proto3 JSON). CORS lets the configured UI origins call it from the browser; with
FORGEFLOW_CODEC_TOKEN set, every call must bring `Authorization: Bearer <token>`.

Whoever reaches it can ask it to decrypt, so it is strict about what it serves: it refuses to listen
beyond loopback without a token, answers every malformed request with a 4xx and a JSON
`{"message": ...}`, reads a body only of a declared length within MAX_BODY, disconnects clients that
stall or trickle, and serves a bounded number of connections at once (503 beyond).
"""

from __future__ import annotations

import contextlib
import hmac
import io
import ipaddress
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import structlog
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from payloads.codec import AesGcmCodec, CodecError

if TYPE_CHECKING:
    from _socket import _RetAddress
    from socketserver import _RequestType

    from _typeshed import WriteableBuffer

log = structlog.get_logger(__name__)
MAX_BODY = 64 * 1024**2
CLIENT_TIMEOUT = 10.0  # seconds a client may stay silent mid-request
REQUEST_DEADLINE = 60.0  # seconds to send a whole request, however steadily it trickles
MAX_CONNECTIONS = 32
_BUSY_BODY = b'{"message": "the codec server is busy; try again"}'
_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY
)

Operation = Callable[[Sequence[Payload]], list[Payload]]


class CodecServerConfigError(ValueError):
    """make_server refuses a configuration that would expose decryption; the message says why."""


class _RequestError(Exception):
    """A request answered with a 4xx: the status and the message the client is shown."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or the name localhost; any other name or address may be reachable from outside."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def content_length(headers: Message, max_body: int = MAX_BODY) -> int:
    """The length of the body the headers declare, or a _RequestError naming what is wrong with them.

    The length must be unambiguous before a byte is read: a negative one once made `read(-1)` read to
    the end of the stream, and http.server does not decode chunked bodies.
    """
    if headers.get("Transfer-Encoding") is not None:
        raise _RequestError(
            HTTPStatus.LENGTH_REQUIRED, "Transfer-Encoding is not supported: send the body with a Content-Length"
        )
    values = {value.strip() for field in headers.get_all("Content-Length") or [] for value in field.split(",")}
    if not values:
        raise _RequestError(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
    if len(values) > 1:
        raise _RequestError(HTTPStatus.BAD_REQUEST, f"conflicting Content-Length values: {sorted(values)!r:.200}")
    (value,) = values
    if re.fullmatch(r"-[0-9]+", value):
        raise _RequestError(HTTPStatus.BAD_REQUEST, f"Content-Length is negative: {value:.40}")
    if not re.fullmatch(r"[0-9]+", value):  # int() would also take "+5", " 5", "1_0" and non-ASCII digits
        raise _RequestError(HTTPStatus.BAD_REQUEST, f"Content-Length is not a number: {value!r:.40}")
    digits = value.lstrip("0") or "0"
    if len(digits) > len(str(max_body)) or int(digits) > max_body:  # int() of a huge string is slow or refused
        raise _RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body may be at most {max_body} bytes")
    return int(digits)


def parse_payloads(body: bytes) -> Payloads:
    try:
        return json_format.Parse(body.decode("utf-8"), Payloads())
    except UnicodeDecodeError:
        raise _RequestError(HTTPStatus.BAD_REQUEST, "the body is not UTF-8") from None
    except json_format.ParseError as err:
        raise _RequestError(HTTPStatus.BAD_REQUEST, f"the body is not a JSON Payloads message: {err}") from None


class _DeadlineReader(io.RawIOBase):
    """A socket's input with two limits: `idle` seconds of silence, and a deadline for everything.

    The socket timeout alone restarts with every byte, so a client sending one byte a second under
    it would hold its thread forever; the deadline ends that too.
    """

    def __init__(self, sock: socket.socket, idle: float, deadline: float) -> None:
        super().__init__()
        self._sock, self._idle, self._deadline = sock, idle, time.monotonic() + deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the client took longer than the request deadline")
        self._sock.settimeout(min(self._idle, left))
        return self._sock.recv_into(buffer)


@dataclass(frozen=True)
class _Config:
    operations: Mapping[str, Operation]
    token: str | None
    origins: frozenset[str]
    client_timeout: float
    request_deadline: float


class CodecServer(ThreadingHTTPServer):
    """A thread per connection, at most `max_connections` at once: a flood of slow clients can't
    exhaust threads. Beyond the bound the accepting thread answers 503 itself, at once: the Web UI
    and the CLI then show "busy" instead of a reset connection, and no thread is spent on it."""

    def __init__(self, address: tuple[str, int], handler: type[_Handler], config: _Config, slots: int) -> None:
        self.config = config
        self._slots = threading.BoundedSemaphore(slots)
        self.max_connections = slots
        if ":" in address[0]:
            self.address_family = socket.AF_INET6  # http.server binds IPv4 unless told, so "::1" would fail
        super().__init__(address, handler)

    def process_request(self, request: _RequestType, client_address: _RetAddress) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("codec server busy", max_connections=self.max_connections, client=client_address)
            _send_busy(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()  # the thread never started, so it won't release its slot
            raise

    def process_request_thread(self, request: _RequestType, client_address: _RetAddress) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: _RequestType, client_address: _RetAddress) -> None:
        # A structlog line instead of socketserver's traceback on stderr.
        log.exception("codec connection failed", client=client_address)


def _send_busy(request: _RequestType) -> None:
    """The 503, without blocking the accepting thread: it fits in a fresh socket's send buffer."""
    sock = request if isinstance(request, socket.socket) else request[1]
    with contextlib.suppress(OSError):
        sock.setblocking(False)
        sock.send(_BUSY)


class _Handler(BaseHTTPRequestHandler):
    server: CodecServer
    server_version = "forgeflow-codec"

    def setup(self) -> None:
        super().setup()  # sets the idle socket timeout (the subclass's `timeout`)
        self.rfile.close()  # the plain reader setup made; ours adds the request deadline
        config = self.server.config
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, config.client_timeout, config.request_deadline))

    def log_message(self, fmt: str, *args: object) -> None:  # structlog, not stderr lines
        log.info("codec request", line=fmt % args)

    def _cors(self) -> None:
        origin = self.headers.get("Origin")
        if origin is not None and origin in self.server.config.origins:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Access-Control-Allow-Credentials", "true")
            self.send_header("Vary", "Origin")

    def _reply(self, status: HTTPStatus, body: bytes) -> None:
        self.connection.settimeout(self.server.config.client_timeout)  # reading may have left less
        self.send_response(status)
        self._cors()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self.close_connection = True  # the body may be unread: its rest must never parse as a request
        self._reply(status, json.dumps({"message": message}).encode())

    def do_OPTIONS(self) -> None:  # the UI's CORS preflight
        self.send_response(HTTPStatus.OK)
        self._cors()
        self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "Content-Type, X-Namespace, Authorization")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        """Every request gets an answer: a 4xx for what the client got wrong, a generic 500 (the
        details only in our log) for what we did; only a client that stalls or leaves gets none."""
        try:
            answer = self._answer()
        except _RequestError as err:
            self._error(err.status, err.message)
        except OSError as err:  # timed out or gone mid-request: nobody is left to answer
            log.info("codec client dropped", error=repr(err))
            self.close_connection = True
        except Exception:
            log.exception("codec request failed", path=self.path[:200])
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "the codec server failed on this request; see its log")
        else:
            self._reply(HTTPStatus.OK, answer)

    def _answer(self) -> bytes:
        operation = self._operation()
        self._authorise()  # before the body: strangers can't make us read up to MAX_BODY
        length = content_length(self.headers)
        body = self.rfile.read(length)
        if len(body) < length:
            raise _RequestError(HTTPStatus.BAD_REQUEST, f"the body ended after {len(body)} of {length} bytes")
        try:
            result = operation(parse_payloads(body).payloads)
        except CodecError as err:
            raise _RequestError(HTTPStatus.BAD_REQUEST, str(err)) from None
        return json_format.MessageToJson(Payloads(payloads=result)).encode()

    def _operation(self) -> Operation:
        path = self.path.split("?", 1)[0].rstrip("/")
        for suffix, operation in self.server.config.operations.items():
            if path.endswith(suffix):
                return operation
        raise _RequestError(HTTPStatus.NOT_FOUND, "POST /decode or /encode")

    def _authorise(self) -> None:
        token = self.server.config.token
        if token is not None and not hmac.compare_digest(
            self.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()
        ):
            raise _RequestError(HTTPStatus.UNAUTHORIZED, "a bearer token is required")


def make_server(
    codec: AesGcmCodec,
    host: str,
    port: int,
    *,
    token: str | None,
    origins: Sequence[str],
    client_timeout: float = CLIENT_TIMEOUT,
    request_deadline: float = REQUEST_DEADLINE,
    max_connections: int = MAX_CONNECTIONS,
) -> CodecServer:
    """A bound server (call serve_forever). Raises CodecServerConfigError for a non-loopback `host`
    without a token. `client_timeout`: seconds of silence before a client is dropped;
    `request_deadline`: seconds to send a whole request; `max_connections`: served at once."""
    token = token or None  # an empty FORGEFLOW_CODEC_TOKEN means no token, not the token ""
    if token is None and not is_loopback(host):
        raise CodecServerConfigError(
            f"refusing to serve decryption on {host or 'every interface'} without FORGEFLOW_CODEC_TOKEN: "
            "anyone who can reach it could decrypt every run"
        )
    config = _Config(
        operations={"/decode": codec.decrypt, "/encode": codec.encrypt},
        token=token,
        origins=frozenset(origins),
        client_timeout=client_timeout,
        request_deadline=request_deadline,
    )

    class Handler(_Handler):
        timeout = client_timeout  # StreamRequestHandler.setup gives each connection this socket timeout

    return CodecServer((host, port), Handler, config, max_connections)
