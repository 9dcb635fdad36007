"""Per-request plumbing: request ids (ours and the client's), URLs in UTF-8, the JSON-only rule for POST
(plain JSON: no Content-Encoding), one access log line each."""

from __future__ import annotations

import re
import time
import uuid
from urllib.parse import unquote_to_bytes

import structlog
from flask import Flask, Response, abort, current_app, g, request
from werkzeug.exceptions import UnsupportedMediaType

# Echo a client's id only if it is short and plain, so it cannot forge log lines or headers.
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# What a request is about, bound to each of its log lines once known (path or parsed body).
SUBJECTS = ("event_id", "user_id")

log = structlog.get_logger("app.web.request_context")


def init_app(app: Flask) -> None:
    app.before_request(_start_request)
    app.before_request(_require_utf8_url)
    app.before_request(_require_json_body)
    app.after_request(_finish_request)
    app.teardown_request(_forget_request)


def _start_request() -> None:
    g.started = time.perf_counter()
    # The server's own id, always: the one the ledger records, so that no client can write there
    # (not even the marker that migration 0002's backfill reserved for synthetic history).
    g.request_id = uuid.uuid4().hex
    # A client's sane X-Request-ID is its correlation id: echoed and logged beside ours, nothing more.
    supplied = request.headers.get("X-Request-ID", "")
    g.client_request_id = supplied if SANE_REQUEST_ID.match(supplied) else None
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=g.request_id)
    if g.client_request_id:
        structlog.contextvars.bind_contextvars(client_request_id=g.client_request_id)
    bind_subjects(request.view_args or {})


def response_request_id() -> str | None:
    """The X-Request-ID that the response carries: the client's own if it sent a sane one, else ours."""
    return g.get("client_request_id") or g.get("request_id")


def bind_subjects(values) -> None:
    """Add the event and user that `values` name to every later log line of the request."""
    structlog.contextvars.bind_contextvars(**{name: str(values[name]) for name in SUBJECTS if name in values})


def _require_utf8_url() -> None:
    # werkzeug decodes the path and the query with errors="replace": `/api/booking-status/<event>/%ff`
    # would ask for the user named "\ufffd", someone else. A URL that is not UTF-8 names nothing.
    if not (
        _is_utf8(request.environ.get("PATH_INFO", "").encode("latin-1"))
        and _is_utf8(unquote_to_bytes(request.query_string))
    ):
        abort(400, description="the URL is not valid UTF-8 once percent-decoded")


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class ContentCodingRefused(UnsupportedMediaType):
    """A body under a Content-Encoding (RFC 9110, 8.4): none is decoded here, so the body would be read
    as it came, plain JSON under `gzip` booked, while a proxy that decodes it would read another body."""

    description = "POST bodies must not be content-coded: send them without Content-Encoding"

    def get_headers(self, environ=None, scope=None) -> list[tuple[str, str]]:
        return [*super().get_headers(environ, scope), ("Accept-Encoding", "identity")]  # RFC 7694


def takes_no_body(view):
    """Mark a POST view that reads no body (an action on the resource its path names): it may be sent
    without one, and so without a Content-Type; a body it is sent must still be JSON (and is parsed:
    Blueprint.takes_no_body in app/web/blueprint.py, which routes use)."""
    view.takes_no_body = True
    return view


def _require_json_body() -> None:
    # Only for POSTs that reach a view: a wrong path or method gets its own 404 or 405.
    if request.method != "POST" or request.url_rule is None:
        return
    if not request.is_json and not _bodiless_allowed():
        abort(415, description="POST bodies must be JSON (Content-Type: application/json)")
    if request.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity"):
        raise ContentCodingRefused()


def _bodiless_allowed() -> bool:
    view = current_app.view_functions.get(request.endpoint)
    sent_a_body = bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    return getattr(view, "takes_no_body", False) and not sent_a_body


def _finish_request(response: Response) -> Response:
    response.headers["X-Request-ID"] = response_request_id() or uuid.uuid4().hex
    log.info(
        "request",
        method=request.method,
        path=request.path,
        status=response.status_code,
        duration_ms=round(request_duration_s() * 1000, 2),
        client=request.remote_addr,
    )
    return response


def request_duration_s() -> float:
    """Seconds since the request began (since the first hook, which runs before any can refuse it)."""
    return time.perf_counter() - g.get("started", time.perf_counter())


def _forget_request(_error: BaseException | None) -> None:
    structlog.contextvars.clear_contextvars()
