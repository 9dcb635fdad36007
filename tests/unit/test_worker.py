"""The gunicorn worker's own answers and body rules, in-process: gunicorn's parser and a real socket pair
(the e2e tests in tests/e2e/test_server_refusals.py run them in a live server, beyond coverage's reach)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gevent.socket
import pytest
from gunicorn.config import Config as GunicornConfig
from gunicorn.glogging import Logger
from gunicorn.http import errors as parse_errors
from gunicorn.http.parser import RequestParser
from werkzeug.exceptions import BadRequest, RequestTimeout

from gunicorn_worker import BoundedBody, ProblemGeventWorker

ADDR = ("127.0.0.1", 50000)


@pytest.fixture
def cfg():
    return GunicornConfig()


@pytest.fixture
def pair():
    """Two connected cooperative sockets: the server's end and the client's."""
    server, client = gevent.socket.socketpair()
    yield server, client
    server.close()
    client.close()


def answer_to(exc: Exception, cfg, pair) -> tuple[bytes, dict]:
    """What the worker writes back for `exc`: the status line and the problem."""
    server, client = pair
    worker = ProblemGeventWorker(0, 0, [], None, 30, cfg, Logger(cfg))
    client.shutdown(gevent.socket.SHUT_WR)  # nothing more to drop: the worker's linger ends at once
    try:
        raise exc
    except Exception as caught:  # as gunicorn calls it: from its handler
        worker.handle_error(None, server, ADDR, caught)
    received = b""
    while chunk := client.recv(65536):
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], json.loads(body)


@pytest.mark.parametrize(
    "exc, status_line, code",
    [
        (parse_errors.LimitRequestLine(8192, 4094), b"HTTP/1.1 414 Request-URI Too Long", "uri_too_long"),
        (
            parse_errors.LimitRequestHeaders("limit request headers fields"),
            b"HTTP/1.1 431 Request Header Fields Too Large",
            "headers_too_large",
        ),
        (
            parse_errors.UnsupportedTransferCoding("snappy"),
            b"HTTP/1.1 501 Not Implemented",
            "unsupported_transfer_coding",
        ),
        (parse_errors.ExpectationFailed("magic"), b"HTTP/1.1 417 Expectation Failed", "expectation_failed"),
        (parse_errors.InvalidHeaderName("X Y"), b"HTTP/1.1 400 Bad Request", "invalid_request"),
        (parse_errors.InvalidResponseHeader("X-Bad", "v"), b"HTTP/1.1 500 Internal Server Error", "internal_error"),
        (RuntimeError("boom"), b"HTTP/1.1 500 Internal Server Error", "internal_error"),
    ],
)
def test_each_refusal_has_its_status_and_code_and_a_detail_of_ours(cfg, pair, exc, status_line, code):
    line, problem = answer_to(exc, cfg, pair)
    assert (line, problem["code"]) == (status_line, code)
    assert str(exc) not in problem["detail"]


def request_on(pair, cfg, data: bytes):
    """The request that gunicorn's parser reads from `data`, sent by the client end of `pair`."""
    server, client = pair
    client.sendall(data)
    return next(RequestParser(cfg, server, ADDR))


def test_a_body_that_arrives_in_time_reads_whole(cfg, pair):
    req = request_on(pair, cfg, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    body = BoundedBody(req, 5)
    assert (body.read(), req.must_close) == (b"hello", False)


def test_a_body_past_its_deadline_is_a_408_and_closes_the_connection(cfg, pair):
    req = request_on(pair, cfg, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nhel")
    with pytest.raises(RequestTimeout):
        BoundedBody(req, 0.2).read()
    assert req.must_close


def test_a_malformed_chunk_is_a_400_and_closes_the_connection(cfg, pair):
    req = request_on(pair, cfg, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    with pytest.raises(BadRequest):
        BoundedBody(req, 5).readline()
    assert req.must_close


def test_a_body_iterates_by_line(cfg, pair):
    req = request_on(pair, cfg, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\na\nb\n")
    assert list(BoundedBody(req, 5)) == [b"a\n", b"b\n"]


def test_loading_the_worker_class_imports_nothing_that_the_gevent_patch_would_come_too_late_for():
    # gunicorn's master loads the class named in gunicorn.conf.py before it forks; each worker patches the
    # standard library only then. A module imported by the master (the app, PyJWT's `from ssl import ...`)
    # keeps the unpatched objects, and gevent warned so on every start of `make run`.
    script = (
        "import runpy, sys, warnings\n"
        "from gunicorn.util import load_class\n"
        "load_class(runpy.run_path('gunicorn.conf.py')['worker_class'])\n"
        "from gevent import monkey\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    monkey.patch_all()\n"
        "print(sorted(name for name in ('app', 'flask', 'jwt', 'sqlalchemy') if name in sys.modules))\n"
        "print([str(warning.message)[:80] for warning in caught])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2]
    )
    assert result.stdout.splitlines() == ["[]", "[]"], result.stdout + result.stderr
