"""The gunicorn worker of `make run` (gunicorn.conf.py): gunicorn's gevent worker with two changes.

1. What gunicorn's HTTP parser refuses (a request line or headers over the limits, malformed bytes, an
   a transfer-coding other than chunked) is answered as the contract's problem+json, with a request id and the API's
   security headers, instead of gunicorn's HTML page, which quoted the parser's internals.
2. A request body must arrive whole within BODY_TIMEOUT of its headers, else 408 and the connection is
   closed: a client trickling its body would otherwise hold one of the worker's connection slots for as
   long as it liked, and enough of them would lock every other client out.

Nothing of the app is imported at module level, and this module lives outside the `app` package, whose
`__init__` imports the whole app: gunicorn's master loads this class before forking, and a module
imported there, before the worker patches the standard library for gevent, would keep the unpatched,
blocking locks and sockets it made at import (gevent warned so for PyJWT's ssl on every start).
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from http import HTTPStatus

import gevent
from gunicorn import util
from gunicorn.http import errors as parse_errors
from gunicorn.workers.ggevent import GeventWorker

PROBLEM_JSON = "application/problem+json"
# The headers app/web/security.py gives every API answer (its API_CSP among them).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}
# After refusing a request, how long its unread rest may still be read and dropped, so that the client
# gets the answer and not a connection reset (the kernel resets a socket closed with unread input).
LINGER_S = 1.0
LINGER_BYTES = 64 * 1024
INTERNAL_ERROR = (500, "internal_error", "an unexpected error occurred; quote the request id when reporting it")


class ProblemGeventWorker(GeventWorker):
    """gunicorn's gevent worker, answering its own refusals as problem+json and bounding body uploads."""

    body_timeout_s: int  # BODY_TIMEOUT, read once the app is loaded

    def load_wsgi(self) -> None:
        super().load_wsgi()
        from app.config import Config  # only now: the standard library is patched

        self.body_timeout_s = Config.from_env().body_timeout_s

    def handle_request(self, listener_name, req, sock, addr):
        if _codings_besides_chunked(req):
            raise parse_errors.UnsupportedTransferCoding(req.headers)
        if req.body is not None:
            req.body = BoundedBody(req, self.body_timeout_s)
        return super().handle_request(listener_name, req, sock, addr)

    def handle_error(self, req, client, addr, exc) -> None:
        """Answer a request that gunicorn could not parse, or whose handling failed, as problem+json."""
        status, code, detail = self._refusal(exc)
        request_id = uuid.uuid4().hex
        ip = (addr or ("",))[0]
        if code == INTERNAL_ERROR[1]:
            self.log.exception("Error handling request from ip=%s (request id %s)", ip, request_id)
        else:
            self.log.warning("Invalid request from ip=%s: %s (request id %s)", ip, exc, request_id)
        try:
            util.write_nonblock(client, problem_response(status, code, detail, request_id))
            _linger(client)
        except OSError:
            self.log.debug("Failed to send error message.")

    def _refusal(self, exc: BaseException) -> tuple[int, str, str]:
        """(status, code, detail) for `exc`; the detail is ours, never the request's bytes or gunicorn's words."""
        if isinstance(exc, (parse_errors.InvalidResponseHeader, parse_errors.InvalidResponseHeaderName)):
            return INTERNAL_ERROR  # a header the app tried to send: our fault, not the client's
        cfg = self.cfg
        refusals = [
            (
                parse_errors.LimitRequestLine,
                414,
                "uri_too_long",
                f"the request line is longer than {cfg.limit_request_line} bytes",
            ),
            (
                parse_errors.LimitRequestHeaders,
                431,
                "headers_too_large",
                f"more than {cfg.limit_request_fields} header fields, or one longer than "
                f"{cfg.limit_request_field_size} bytes",
            ),
            (
                parse_errors.UnsupportedTransferCoding,
                501,
                "unsupported_transfer_coding",
                "the only transfer-coding accepted is chunked",
            ),
            (
                parse_errors.ExpectationFailed,
                417,
                "expectation_failed",
                "the only expectation accepted is 100-continue",
            ),
            (parse_errors.ConfigurationProblem, *INTERNAL_ERROR),
            (
                parse_errors.ParseException,
                400,
                "invalid_request",
                "the request is not valid HTTP/1.1: its request line or a header is malformed",
            ),
        ]
        for error_class, status, code, detail in refusals:
            if isinstance(exc, error_class):
                return status, code, detail
        return INTERNAL_ERROR


def _codings_besides_chunked(req) -> bool:
    """Whether the request's Transfer-Encoding names a coding other than chunked.

    gunicorn's parser lets gzip, deflate, compress and identity stand before chunked, removes only the
    chunking and hands the app a body still in the other codings, which the app would read as plain
    JSON: `gzip, chunked` with a plain body was booked, while a proxy that decodes gzip would have read
    another body. No coding but chunked is implemented here, so any other is 501, as RFC 9112 asks.
    """
    codings = [value for name, value in req.headers if name == "TRANSFER-ENCODING"]
    return any(coding.strip(" \t").lower() != "chunked" for value in codings for coding in value.split(","))


def problem_response(status: int, code: str, detail: str, request_id: str) -> bytes:
    """A whole HTTP/1.1 response carrying an RFC 9457 problem, in the app's layout (app/web/errors.py)."""
    title = HTTPStatus(status).phrase
    body = json.dumps(
        {
            "type": "about:blank",
            "title": title,
            "status": status,
            "code": code,
            "detail": detail,
            "requestId": request_id,
        }
    ).encode()
    headers = {
        "Date": util.http_date(),
        "Connection": "close",
        "Content-Type": PROBLEM_JSON,
        "Content-Length": str(len(body)),
        "X-Request-ID": request_id,
        **SECURITY_HEADERS,
    }
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"HTTP/1.1 {status} {title}\r\n{head}\r\n".encode("latin-1") + body


def _linger(client: socket.socket) -> None:
    """Say we are done sending, then drop what the client still sends, for a moment and up to a bound."""
    client.shutdown(socket.SHUT_WR)
    dropped = 0
    with gevent.Timeout(LINGER_S, False):
        while dropped < LINGER_BYTES:
            data = client.recv(8192)
            if not data:
                return
            dropped += len(data)


class BoundedBody:
    """The request body as the app reads it (`wsgi.input`), with two rules over gunicorn's reader.

    - It must arrive whole within `timeout_s` of the request's headers: a read past that raises 408.
    - A framing error (a malformed chunk) is the client's: 400, where it would have escaped as a 500.
    Either way the connection is closed after the answer, since the rest of the body is unread.
    """

    def __init__(self, req, timeout_s: float) -> None:
        self._req, self._body, self._timeout_s = req, req.body, timeout_s
        self._deadline = time.monotonic() + timeout_s

    def read(self, size=None) -> bytes:
        return self._bounded(self._body.read, size)

    def readline(self, size=None) -> bytes:
        return self._bounded(self._body.readline, size)

    def readlines(self, size=None) -> list[bytes]:
        return self._bounded(self._body.readlines, size)

    def __iter__(self):
        return iter(self.readline, b"")

    def _bounded(self, read, size):
        from werkzeug.exceptions import BadRequest, RequestTimeout  # only now: see the module's docstring

        timer = gevent.Timeout(max(0.0, self._deadline - time.monotonic()))
        try:
            with timer:
                return read(size)
        except gevent.Timeout as expired:
            if expired is not timer:
                raise
            self._req.must_close = True
            raise RequestTimeout(f"the request body did not arrive within {self._timeout_s} s") from None
        except parse_errors.ParseException:
            self._req.must_close = True
            raise BadRequest("the request body's chunked framing is not valid") from None
