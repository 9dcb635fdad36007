"""The one place where failures become RFC 9457 problem+json responses, and the refusals of the
HTTP protocol itself (the booking rules' own are in app/booking/domain.py)."""

from __future__ import annotations

import itertools
from http import HTTPStatus

import structlog
from flask import Flask, Response, current_app, json
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from app.booking.domain import Refusal, quoted
from app.web.request_context import response_request_id

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = "1"

HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",  # app/web/identity.py
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}
MAX_FIELD_ERRORS = 10  # fields named in a 400's `errors`
# Connection refused or lost, pool exhausted, statement or lock timeout: the database is unavailable.
UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout)

log = structlog.get_logger("app.web.errors")


class Unauthorized(Refusal):
    code, status, headers = "unauthorized", 401, {"WWW-Authenticate": 'Bearer realm="admin"'}

    def __init__(self) -> None:
        super().__init__("a valid admin bearer token is required")


class IdempotencyKeyReused(Refusal):
    code, status = "idempotency_key_reused", 422

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was used for another request (method, path or body differ)")


class RequestInProgress(Refusal):
    code, status, headers = "request_in_progress", 409, {"Retry-After": RETRY_AFTER_SECONDS}

    def __init__(self) -> None:
        super().__init__("a request with this Idempotency-Key is still in progress; retry shortly")


def codes_for(status: int) -> list[str]:
    """The `code` values that come with `status`: the refusals', then the plain HTTP error's."""
    codes = [kind.code for kind in Refusal.kinds if kind.status == status] + [HTTP_CODES.get(status)]
    return [code for code in dict.fromkeys(codes) if code is not None]  # 401's is both


def problem(status: int, code: str, detail: str | None = None, errors: dict | None = None) -> Response:
    """A problem+json response; the request id is included so that a client can quote it."""
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "code": code}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    body["requestId"] = response_request_id()
    return Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)


def init_app(app: Flask) -> None:
    app.register_error_handler(Refusal, refused)
    app.register_error_handler(HTTPException, _http_error)
    for error_class in UNAVAILABLE:
        app.register_error_handler(error_class, _unavailable)
    app.register_error_handler(DBAPIError, _database_error)
    app.register_error_handler(Exception, _unexpected)


def refused(refusal: Refusal) -> Response:
    """The response to a refusal, by the rules or by the protocol; also what an Idempotency-Key stores."""
    response = problem(refusal.status, refusal.code, str(refusal), refusal.field_errors())
    response.headers.update(refusal.headers)
    return response


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    code = HTTP_CODES.get(status, "invalid_request" if status < 500 else "internal_error")
    response = problem(status, code, _describe(error), _field_errors(error))
    for name, value in error.get_headers():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value  # Allow on 405, Retry-After on 429, ...
    return response


def _unavailable(error: Exception) -> Response:
    log.warning("database_unavailable", error=type(error).__name__, detail=str(error).splitlines()[0])
    response = problem(503, "unavailable", "the database is unavailable; retry shortly")
    response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return response


def _database_error(error: DBAPIError) -> Response:
    """A connection lost mid-COMMIT is a bare DatabaseError in psycopg2: unavailable, not unexpected.

    Such a commit may or may not have happened, so the client must not take the 503 for "nothing
    changed"; with an Idempotency-Key its retry gets the stored answer if it did.
    """
    if error.connection_invalidated:
        return _unavailable(error)
    return _unexpected(error)


def _unexpected(error: Exception) -> Response:
    log.exception("unhandled_exception")
    return problem(500, "internal_error", "an unexpected error occurred; quote the request id when reporting it")


def _describe(error: HTTPException) -> str:
    if _field_errors(error):
        return "the request is not valid; see errors"
    if error.code == 413:
        return f"the request body is larger than {current_app.config['MAX_CONTENT_LENGTH']} bytes"
    if error.code == 429:  # flask-limiter's description is the limit that was hit
        return f"too many requests from this client (limit: {error.description}); retry after Retry-After seconds"
    return error.description or HTTPStatus(error.code).description


def _field_errors(error: HTTPException) -> dict | None:
    """webargs nests marshmallow's messages under the request location; clients want the fields.

    At most MAX_FIELD_ERRORS of them, each name quoted as short as a refusal quotes a value: a body
    may name thousands of unknown fields, each as long as the body limit allows.
    """
    messages = (getattr(error, "data", None) or {}).get("messages")
    if not messages:
        return None
    named = itertools.islice(_messages_by_field(messages), MAX_FIELD_ERRORS)
    return {quoted(field): _as_strings(field_messages) for field, field_messages in named}


def _messages_by_field(messages: dict):
    for location_messages in messages.values():
        if isinstance(location_messages, list):
            location_messages = {"body": location_messages}
        for field, field_messages in location_messages.items():
            yield "body" if field == "_schema" else field, field_messages


def _as_strings(messages) -> list[str]:
    if isinstance(messages, dict):  # a nested structure: keep it readable as text
        return [f"{key}: {value}" for key, value in messages.items()]
    return [str(message) for message in messages]
