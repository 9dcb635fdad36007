"""What the HTTP server refuses before the app sees a request, and bodies that never finish arriving.

Spoken to over raw sockets: a client library would refuse to send most of these requests.
"""

from __future__ import annotations

import json
import resource
import socket
from urllib.parse import quote

import pytest

from tests.helpers.live_server import Gunicorn, call, exchange, read_response

ADMIN_TOKEN = "e2e-refusals-admin-token-0123456789"
BODY_TIMEOUT_S = 1
HEAD = b"Host: localhost\r\n"
BOOKING = b'{"eventId": "no-such-event", "userId": "smuggler"}'


@pytest.fixture(scope="module")
def server(database_url, tmp_path_factory):
    server = Gunicorn(
        database_url,
        ADMIN_TOKEN,
        tmp_path_factory.mktemp("refusals") / "gunicorn.log",
        settings={"BODY_TIMEOUT": f"{BODY_TIMEOUT_S}s", "RATE_LIMIT": ""},
    )
    server.start()
    yield server
    assert server.stop() == 0, server.log()


def assert_problem(response, body: bytes, status: int, code: str) -> dict:
    """A problem+json answer with the usual headers; its parsed body."""
    assert response.status == status, body
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = json.loads(body)
    assert (problem["type"], problem["status"], problem["code"]) == ("about:blank", status, code)
    assert problem["requestId"] == response.headers["X-Request-ID"] and problem["detail"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    return problem


@pytest.mark.parametrize(
    "request_bytes, status, code",
    [
        (b"GET /api/status/" + b"e" * 5000 + b" HTTP/1.1\r\n" + HEAD + b"\r\n", 414, "uri_too_long"),
        (b"GET /healthz HTTP/1.1\r\n" + HEAD + b"X-Probe: " + b"v" * 9000 + b"\r\n\r\n", 431, "headers_too_large"),
        (
            b"GET /healthz HTTP/1.1\r\n" + HEAD + b"".join(b"X-Probe-%d: v\r\n" % i for i in range(60)) + b"\r\n",
            431,
            "headers_too_large",
        ),
        (b"GET /healthz HTTP/1.1\r\n" + HEAD + b"X-Probe: a\x01b\r\n\r\n", 400, "invalid_request"),
        (b"GET /healthz HTTP/1.1\r\n" + HEAD + b"X-Pr obe: v\r\n\r\n", 400, "invalid_request"),
        (b"GET /healthz HTTP/9.9\r\n" + HEAD + b"\r\n", 400, "invalid_request"),
        (
            b"POST /api/book HTTP/1.1\r\n" + HEAD + b"Transfer-Encoding: snappy\r\n\r\n",
            501,
            "unsupported_transfer_coding",
        ),
        *[
            (
                b"POST /api/book HTTP/1.1\r\n"
                + HEAD
                + b"Content-Type: application/json\r\nTransfer-Encoding: "
                + coding
                + b", chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(BOOKING), BOOKING),
                501,
                "unsupported_transfer_coding",
            )
            for coding in (b"gzip", b"deflate", b"compress", b"identity")
        ],
    ],
    ids=[
        "long-request-line",
        "long-header",
        "too-many-headers",
        "control-byte",
        "bad-header-name",
        "bad-version",
        "unknown-transfer-coding",
        "gzip-then-chunked",
        "deflate-then-chunked",
        "compress-then-chunked",
        "identity-then-chunked",
    ],
)
def test_what_the_http_server_refuses_is_problem_json_that_quotes_nothing_of_the_request(
    server, request_bytes, status, code
):
    response, body = exchange(server.port, request_bytes)
    problem = assert_problem(response, body, status, code)
    assert response.headers["Connection"] == "close"
    assert "Probe" not in problem["detail"] and "eeee" not in problem["detail"] and "<html" not in body.decode()


def test_a_malformed_chunk_is_the_clients_400_not_a_500(server):
    response, body = exchange(
        server.port,
        b"POST /api/book HTTP/1.1\r\n" + HEAD + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        b"\r\nzz\r\n{}\r\n0\r\n\r\n",
    )
    assert_problem(response, body, 400, "invalid_request")


def test_the_longest_user_id_a_client_may_send_fits_in_the_request_line(server):
    user_id = "\U0001f600" * 128  # 128 code points of 4 bytes each, 12 once percent-encoded
    path = f"/api/booking-status/{'e' * 36}/{quote(user_id, safe='')}"
    status, _, problem = call(server.base_url, "GET", path)
    assert (len(path), status, problem["code"]) == (1593, 404, "event_not_found")


def test_a_body_that_does_not_arrive_within_body_timeout_is_408_and_the_connection_closed(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=BODY_TIMEOUT_S + 5) as sock:
        sock.sendall(
            b"POST /api/book HTTP/1.1\r\n" + HEAD + b"Content-Type: application/json\r\n"
            b'Content-Length: 60\r\n\r\n{"eventId": '
        )
        response = read_response(sock)
        body = response.read()
        assert_problem(response, body, 408, "request_timeout")
        assert response.headers["Connection"] == "close"
        assert sock.recv(1) == b""  # closed by the server: the rest of the body is never awaited


HELD_CONNECTIONS = 1100  # more than the 1000 a worker held before


@pytest.fixture
def held_open_file_limit():
    """Room in this process for the connections the test holds (the soft limit is often 1024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = HELD_CONNECTIONS + 200
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_clients_trickling_their_bodies_on_many_connections_do_not_lock_others_out(
    database_url, tmp_path, held_open_file_limit
):
    server = Gunicorn(database_url, ADMIN_TOKEN, tmp_path / "gunicorn.log", workers=1, settings={"RATE_LIMIT": ""})
    server.start()
    held = []
    try:
        for _ in range(HELD_CONNECTIONS):  # each holds a slot until BODY_TIMEOUT (10 s)
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            held.append(sock)
            sock.sendall(
                b"POST /api/book HTTP/1.1\r\n" + HEAD + b"Content-Type: application/json\r\nContent-Length: 60\r\n\r\n{"
            )
        assert call(server.base_url, "GET", "/healthz", timeout=3)[0] == 200
    finally:
        for sock in held:
            sock.close()
        assert server.stop() == 0, server.log()
