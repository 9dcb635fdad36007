"""Webhook receivers for tests: real HTTP servers (pytest-httpserver) that verify each delivery's
signature with the `standardwebhooks` package, exactly as a receiver in the wild would; and a hostile
one on raw sockets (`HostileReceiver`) that streams, trickles and holds its replies (issue 23)."""

from __future__ import annotations

import itertools
import json
import logging
import select
import socket
import socketserver
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from pytest_httpserver import HTTPServer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from werkzeug import Request, Response

from tests.helpers.live_server import free_port

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per delivery would drown the chaos run's output


class Receiver:
    """An HTTP server that answers each POST with `answer(request)` (default 204) and keeps, in arrival
    order, every delivery whose signature verifies; `rejected` holds the ones that did not."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port or free_port()  # known before start: a test may register it first
        self.server = HTTPServer(host, self.port, threaded=True)
        self.server.expect_request("/hook", method="POST").respond_with_handler(self._handle)
        self.secret: str | None = None
        self.answer: Callable[[Request], Response] = lambda _request: Response(status=204)
        self.arrivals: list[dict] = []  # every verified body, in arrival order, whatever the answer
        self.delivered: list[dict] = []  # those answered with a 2xx
        self.rejected: list[str] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    def start(self) -> Receiver:
        self.server.start()
        return self

    def stop(self) -> None:
        if self.server.is_running():
            self.server.stop()

    def ids(self) -> list[str]:
        with self._lock:
            return [body["id"] for body in self.delivered]

    def _handle(self, request: Request) -> Response:
        try:
            body = Webhook(self.secret).verify(request.get_data(), dict(request.headers))
        except (WebhookVerificationError, TypeError, ValueError) as error:
            with self._lock:
                self.rejected.append(f"{error!r}")
            return Response(status=400)
        with self._lock:
            self.arrivals.append(body)
        response = self.answer(request)
        if 200 <= response.status_code < 300:
            with self._lock:
                self.delivered.append(body)
        return response


def statuses(*codes: int, then: int = 204, headers: dict | None = None) -> Callable[[Request], Response]:
    """An `answer` that replies with each of `codes` once, in turn, and `then` ever after."""
    remaining = list(codes)
    lock = threading.Lock()

    def answer(_request: Request) -> Response:
        with lock:
            code = remaining.pop(0) if remaining else then
        return Response(json.dumps({}), status=code, headers=headers if code != then else None)

    return answer


def refused_once_each() -> Callable[[Request], Response]:
    """An `answer`: 500 to each message's first try, 204 to its next; so that a later message is ready
    while an earlier one is still due again, and any order kept is the dispatcher's doing."""
    tried, lock = set(), threading.Lock()

    def answer(request: Request) -> Response:
        message = json.loads(request.get_data())["id"]
        with lock:
            first, _ = message not in tried, tried.add(message)
        return Response(status=500 if first else 204)

    return answer


# A hostile receiver's replies (`HostileReceiver.reply`), each given the connection to write to.
CHUNK = b"x" * 65536
HEAD_200_CHUNKED = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"


class Connection:
    """One dispatcher's connection, as the receiver's reply sees it."""

    def __init__(self, sock: socket.socket, stopped: threading.Event) -> None:
        self.sock, self.stopped = sock, stopped
        self.bytes_sent = 0

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.bytes_sent += len(data)

    def hung_up_within(self, seconds: float) -> bool:
        """Wait up to `seconds` (the receiver's pace); whether the dispatcher closed the connection meanwhile."""
        readable, _, _ = select.select([self.sock], [], [], seconds)
        if self.stopped.is_set():
            return True
        return bool(readable) and self.sock.recv(1) == b""


def stream(total_bytes: int) -> Callable[[Connection], None]:
    """A reply: 200 and a chunked body of `total_bytes`, as fast as the dispatcher reads it."""

    def reply(connection: Connection) -> None:
        connection.send(HEAD_200_CHUNKED)
        frame = b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK)
        for _ in range(total_bytes // len(CHUNK)):
            connection.send(frame)
        connection.send(b"0\r\n\r\n")

    return reply


def trickle(head: bytes, then: bytes, every_s: float) -> Callable[[Connection], None]:
    """A reply: `head` at once, then `then` over and over, one byte every `every_s`, until the dispatcher
    hangs up: faster than any per-read timeout, so only a deadline for the whole send ends it."""

    def reply(connection: Connection) -> None:
        connection.send(head)
        for byte in itertools.cycle(then):
            if connection.hung_up_within(every_s):
                return
            connection.send(bytes([byte]))

    return reply


def trickled_headers(every_s: float) -> Callable[[Connection], None]:
    return trickle(b"HTTP/1.1 200 OK\r\n", b"X-Padding: " + b"y" * 50 + b"\r\n", every_s)


def trickled_body(every_s: float) -> Callable[[Connection], None]:
    return trickle(HEAD_200_CHUNKED, b"1\r\nz\r\n", every_s)


@dataclass(frozen=True)
class Send:
    """One POST the hostile receiver saw: its webhook-id, and when it came and ended (monotonic)."""

    webhook_id: str
    arrived_at: float
    ended_at: float
    bytes_sent: int


class HostileReceiver:
    """A raw HTTP/1.1 server on 127.0.0.1, a thread per connection, that reads each POST whole and then
    replies with `reply(connection)`: a stream, a trickle, a hold. It counts the sends of each
    `webhook-id` open at once, from the request's arrival until the reply ends or the dispatcher hangs up."""

    def __init__(self, reply: Callable[[Connection], None]) -> None:
        self.reply, self.port = reply, free_port()
        self.secret: str | None = None  # set by the `register` fixture; unused: this receiver verifies nothing
        self.arrivals: list[str] = []  # the webhook-id of each send, in arrival order
        self.sends: list[Send] = []  # the finished ones, in the order they ended
        self.open: Counter = Counter()  # webhook-id -> sends open now
        self.most_at_once: Counter = Counter()  # webhook-id -> most sends open at once
        self._lock, self._stopped = threading.Lock(), threading.Event()
        self._server = socketserver.ThreadingTCPServer(
            ("127.0.0.1", self.port), self._handler(), bind_and_activate=False
        )
        self._server.daemon_threads, self._server.allow_reuse_address = True, True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def open_now(self) -> int:
        with self._lock:
            return sum(self.open.values())

    def start(self) -> HostileReceiver:
        self._server.server_bind()
        self._server.server_activate()
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        receiver = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = 60  # a dispatcher that neither reads nor hangs up cannot hold the receiver's thread for ever

            def handle(self) -> None:
                receiver._serve(self.request, self.rfile)

        return Handler

    def _serve(self, sock: socket.socket, rfile) -> None:
        webhook_id = _read_post(rfile)
        arrived_at, connection = time.monotonic(), Connection(sock, self._stopped)
        with self._lock:
            self.arrivals.append(webhook_id)
            self.open[webhook_id] += 1
            self.most_at_once[webhook_id] = max(self.most_at_once[webhook_id], self.open[webhook_id])
        try:
            self.reply(connection)
        except OSError:  # the dispatcher hung up mid-reply
            pass
        finally:
            with self._lock:
                self.open[webhook_id] -= 1
                self.sends.append(Send(webhook_id, arrived_at, time.monotonic(), connection.bytes_sent))


def _read_post(rfile) -> str:
    """Read one request's head and body; its webhook-id header."""
    headers = {}
    rfile.readline()  # the request line
    while (line := rfile.readline().strip()) != b"":
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    rfile.read(int(headers.get("content-length", "0")))
    return headers.get("webhook-id", "")


def told(receiver, user: str) -> list[dict]:
    """The messages delivered about `user`'s bookings, in arrival order."""
    return [body for body in list(receiver.delivered) if body["data"].get("booking", {}).get("userId") == user]


def types(receiver, user: str) -> list[str]:
    return [body["type"] for body in told(receiver, user)]
