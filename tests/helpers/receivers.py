"""Webhook receivers for tests: real HTTP servers (pytest-httpserver) that verify each delivery's
signature with the `standardwebhooks` package, exactly as a receiver in the wild would."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

from pytest_httpserver import HTTPServer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from werkzeug import Request, Response

from tests.helpers.live_server import free_port

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per delivery would drown the chaos run's output


class Receiver:
    """An HTTP server that answers each POST with `answer(request)` (default 204) and keeps, in arrival
    order, every delivery whose signature verifies; `rejected` holds the ones that did not."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()  # known before start: a test may register it first
        self.server = HTTPServer("127.0.0.1", self.port, threaded=True)
        self.server.expect_request("/hook", method="POST").respond_with_handler(self._handle)
        self.secret: str | None = None
        self.answer: Callable[[Request], Response] = lambda _request: Response(status=204)
        self.arrivals: list[dict] = []  # every verified body, in arrival order, whatever the answer
        self.delivered: list[dict] = []  # those answered with a 2xx
        self.rejected: list[str] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

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
