"""The codec server against what an attacker sends it: the real server on a loopback port, raw
sockets for the request shapes no polite client would send, and the server still serving after each."""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from google.protobuf import json_format
from structlog.testing import capture_logs
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.contrib.pydantic import pydantic_data_converter

from payloads.codec import ENCODING, KEY_ID, AesGcmCodec, new_key, parse_keys
from payloads.codec_server import MAX_BODY, CodecServer, CodecServerConfigError, is_loopback, make_server

CODEC = AesGcmCodec(parse_keys(json.dumps({"k1": new_key()})))
Serve = Callable[..., int]
HEAD = b"POST /decode HTTP/1.1\r\nHost: codec\r\n"


def body_of(payloads: Sequence[Payload]) -> bytes:
    return json_format.MessageToJson(Payloads(payloads=payloads)).encode()


def sealed() -> bytes:
    (plain,) = pydantic_data_converter.payload_converter.to_payloads([{"content": "def slugify(): ..."}])
    return body_of(CODEC.encrypt([plain]))


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Starts a real codec server on 127.0.0.1 in a thread; returns its port. Stopped afterwards."""
    servers: list[CodecServer] = []

    def start(codec: AesGcmCodec = CODEC, **options: Any) -> int:
        server = make_server(codec, "127.0.0.1", 0, token=options.pop("token", None), origins=(), **options)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_port

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def exchange(port: int, raw: bytes, *, timeout: float = 5) -> tuple[int, dict[str, Any]]:
    """Sends `raw` as is; the status and JSON body of the answer (the server closes after it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        return parse_answer(read_all(sock))


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def parse_answer(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body or b"{}")


def post(port: int, path: str = "/decode", body: bytes | None = None, **headers: str) -> tuple[int, dict[str, Any]]:
    """A well-formed request through http.client."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=sealed() if body is None else body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def assert_still_serving(port: int) -> None:
    status, answer = post(port)
    assert status == 200
    assert json_format.ParseDict(answer, Payloads()).payloads[0].metadata["encoding"] == b"json/plain"


def _post_unless_busy(port: int) -> tuple[int, dict[str, Any]] | None:
    """A request's answer, or None when the server was busy: a 503, which it may send and hang up on
    before reading the body we are still sending (then the send fails)."""
    try:
        answer = post(port)
    except (BrokenPipeError, ConnectionResetError):
        return None
    return None if answer[0] == 503 else answer


def assert_a_slot_frees(port: int, within: float = 30) -> None:  # generous: a loaded CI machine
    """The connection slots come back once the handler threads end (just after they hang up), and
    the server answers a real request again. With one slot, the thread of the previous request may
    hold it a moment after its answer: a 503 means "not yet"."""
    deadline = time.monotonic() + within
    while (answer := _post_unless_busy(port)) is None:
        assert time.monotonic() < deadline, "the slots were never released"
        time.sleep(0.05)
    status, body = answer
    assert status == 200
    assert json_format.ParseDict(body, Payloads()).payloads[0].metadata["encoding"] == b"json/plain"


def test_decode_and_encode_round_trip(serve: Serve) -> None:
    port = serve()
    (plain,) = pydantic_data_converter.payload_converter.to_payloads([{"content": "text"}])
    status, encoded = post(port, "/encode", body_of([plain]))
    assert status == 200
    status, decoded = post(port, "/decode", json.dumps(encoded).encode())
    assert status == 200 and json_format.ParseDict(decoded, Payloads()).payloads == [plain]


BAD_REQUESTS = [
    (HEAD + b"\r\n" + sealed(), 411, "Content-Length is required"),
    (HEAD + b"Content-Length: abc\r\n\r\n", 400, "Content-Length is not a number: 'abc'"),
    (HEAD + b"Content-Length: +5\r\n\r\n", 400, "not a number"),
    (HEAD + b"Content-Length: \r\n\r\n", 400, "not a number"),
    (HEAD + b"Content-Length: -1\r\n\r\n", 400, "Content-Length is negative: -1"),
    (HEAD + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400, "conflicting Content-Length values"),
    (HEAD + b"Content-Length: 5, 6\r\n\r\n", 400, "conflicting Content-Length values"),
    (HEAD + b"Content-Length: %d\r\n\r\n" % (MAX_BODY + 1), 413, f"at most {MAX_BODY} bytes"),
    (HEAD + b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n", 413, "at most"),
    (
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        411,
        "Transfer-Encoding is not supported",
    ),
    (HEAD + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello", 411, "Transfer-Encoding"),
    (HEAD + b"Content-Length: 8\r\n\r\nnot json", 400, "not a JSON Payloads message"),
    (HEAD + b"Content-Length: 2\r\n\r\n\xff\xfe", 400, "the body is not UTF-8"),
    (HEAD + b"Content-Length: 40000\r\n\r\n" + b"[" * 40000, 400, "maximum recursion depth"),
    (b"POST /nothing HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 404, "POST /decode or /encode"),
]


# Ids name the expected answer: the sealed payload is random, and pytest-xdist needs stable ids.
@pytest.mark.parametrize(
    ("raw", "status", "message"),
    BAD_REQUESTS,
    ids=[f"{status}-{message}" for _, status, message in BAD_REQUESTS],
)
def test_bad_requests_get_a_4xx_naming_the_problem_and_the_server_keeps_serving(
    serve: Serve, raw: bytes, status: int, message: str
) -> None:
    port = serve()
    got, answer = exchange(port, raw)
    assert got == status
    assert message in answer["message"], answer
    assert_still_serving(port)


def test_a_body_shorter_than_its_length_is_a_400(serve: Serve) -> None:
    port = serve()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(HEAD + b"Content-Length: 100\r\n\r\n{}")
        sock.shutdown(socket.SHUT_WR)  # the client says it has sent everything
        status, answer = parse_answer(read_all(sock))
    assert status == 400 and answer["message"] == "the body ended after 2 of 100 bytes"


def test_a_negative_length_does_not_read_the_body(serve: Serve) -> None:
    """read(-1) once read to the end of the stream: 2 MB with the connection held open would then
    keep the handler reading until the client let go, and answer nothing meanwhile."""
    port = serve()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(HEAD + b"Content-Length: -1\r\n\r\n")
        flood = threading.Thread(target=_send_quietly, args=(sock, b"[" * 2 * 1024**2), daemon=True)
        flood.start()
        status, answer = parse_answer(_read_until_closed(sock))
        flood.join(timeout=10)
    assert status == 400 and answer["message"] == "Content-Length is negative: -1"
    assert_still_serving(port)


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the server closes on us once it has answered: expected
        sock.sendall(data)


def _read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass  # a close with our unread bytes in its buffer resets; the answer arrived before it
    return b"".join(chunks)


def _seconds_until_dropped(port: int, gap: float, limit: float = 10) -> float:
    """Sends a request's head a byte at a time, `gap` seconds apart; seconds until the server hangs up."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as sock:
        for byte in HEAD * 10:
            try:
                sock.send(bytes([byte]))
            except OSError:
                return time.monotonic() - started
            readable, _, _ = select.select([sock], [], [], gap)
            if readable and _read_until_closed(sock) == b"":
                return time.monotonic() - started
            assert time.monotonic() - started < limit, "the slow client is still connected"
    raise AssertionError("the server read the whole trickle")


def test_a_silent_client_is_dropped_and_its_thread_ends(serve: Serve) -> None:
    port = serve(client_timeout=1, max_connections=1)
    assert 1 <= _seconds_until_dropped(port, gap=1.5) < 10
    assert_a_slot_frees(port)  # the only slot: the handler thread ended


def test_a_client_trickling_under_the_idle_timeout_is_dropped_at_the_deadline(serve: Serve) -> None:
    port = serve(client_timeout=1, request_deadline=2, max_connections=1)
    assert 2 <= _seconds_until_dropped(port, gap=0.3) < 10
    assert_a_slot_frees(port)


def test_connections_beyond_the_bound_get_503_at_once(serve: Serve) -> None:
    port = serve(client_timeout=30, max_connections=2)
    held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
    for sock in held:
        sock.sendall(b"POST /decode HTTP/1.1\r\n")  # and then nothing: each holds a handler thread
    started = time.monotonic()
    status, answer = exchange(port, b"")
    assert status == 503 and "busy" in answer["message"] and time.monotonic() - started < 2
    for sock in held:
        sock.close()
    assert_a_slot_frees(port)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (Payload(metadata={"encoding": ENCODING, KEY_ID: b"\xff\xfek1"}, data=b"x" * 40), "is not UTF-8"),
        (Payload(metadata={"encoding": ENCODING, KEY_ID: b"k1"}, data=b"short"), "too short to hold a nonce"),
        (Payload(metadata={"encoding": ENCODING, KEY_ID: b"k9"}, data=b"x" * 40), "'k9', which is not in"),
    ],
)
def test_payloads_that_do_not_decrypt_get_400(serve: Serve, payload: Payload, message: str) -> None:
    port = serve()
    status, answer = post(port, body=body_of([payload]))
    assert status == 400 and message in answer["message"]
    assert_still_serving(port)


class BrokenCodec(AesGcmCodec):
    """A codec failing in a way the server does not expect."""

    def decrypt(self, payloads: Sequence[Payload]) -> list[Payload]:
        raise RuntimeError("internal detail: /srv/keys/ring.json")


def test_an_unexpected_failure_is_a_generic_500_and_a_log_line(serve: Serve) -> None:
    port = serve(BrokenCodec(parse_keys(json.dumps({"k1": new_key()}))))
    with capture_logs() as logs:
        status, answer = post(port)
    assert status == 500 and answer == {"message": "the codec server failed on this request; see its log"}
    assert [(e["event"], e["log_level"]) for e in logs if e["log_level"] == "error"] == [
        ("codec request failed", "error")
    ]
    status, _ = post(port, "/encode", body_of([]))
    assert status == 200


def test_the_token_is_required_when_set(serve: Serve) -> None:
    port = serve(token="s3cret-token-value")
    assert post(port)[0] == 401
    assert post(port, Authorization="Bearer wrong")[0] == 401
    assert post(port, Authorization="Bearer s3cret-token-value")[0] == 200


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.168.1.10", False),
        ("10.0.0.1", False),
        ("codec.internal", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback_is_127_8_ipv6_one_or_localhost(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.10", "codec.internal"])
@pytest.mark.parametrize("token", [None, ""])
def test_it_refuses_to_serve_beyond_loopback_without_a_token(host: str, token: str | None) -> None:
    with pytest.raises(
        CodecServerConfigError, match=r"refusing to serve decryption on .* without FORGEFLOW_CODEC_TOKEN"
    ):
        make_server(CODEC, host, 0, token=token, origins=())


@pytest.mark.parametrize(("host", "token"), [("0.0.0.0", "a-long-random-token"), ("localhost", None)])
def test_it_starts_beyond_loopback_with_a_token_and_on_loopback_without(host: str, token: str | None) -> None:
    server = make_server(CODEC, host, 0, token=token, origins=())
    try:
        assert server.server_port > 0
    finally:
        server.server_close()
