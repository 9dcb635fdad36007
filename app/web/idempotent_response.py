"""Safe retries with `Idempotency-Key`, the HTTP half: the header, the request's fingerprint, and the
rendering of responses to store and to replay. The transaction is the service layer's (app/web/idempotency.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Response, jsonify, request
from flask_smorest.utils import unpack_tuple_response
from marshmallow import Schema, ValidationError, fields, validate

from app.web import errors, identity
from app.booking.domain import DomainError
from app.web.idempotency import Idempotency, StoredResponse, fingerprint

REPLAYED_HEADER = "Idempotent-Replayed"
# What a replay needs besides status and body; X-Request-ID is the replaying request's own.
STORED_HEADERS = ("Content-Type", "Location")
REPLAYED_DOC = {
    REPLAYED_HEADER: {
        "description": "`true` when this is the stored response to an earlier request with the same Idempotency-Key",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


def printable_ascii(value: str) -> None:
    if not all(" " <= char <= "~" for char in value):
        raise ValidationError("Must be printable ASCII characters only.")


class IdempotencyKeyHeader(Schema):
    idempotency_key = fields.String(
        data_key="Idempotency-Key",
        validate=[validate.Length(min=1, max=255), printable_ascii],
        metadata={
            "description": "1..255 printable characters, unique per operation: a retry with the same key and "
            "body returns the first response instead of acting twice (kept at least 24 hours)",
            "example": "8e03978e-40d5-43e8-bc93-6894a57f9324",
        },
    )


def idempotent_response(
    blp, status: int, schema: type[Schema], present: Callable[[Any], Any], headers: dict | None = None
):
    """`blp.response(status, schema)` for a write that accepts an `Idempotency-Key` header.

    The view takes an `idempotency` argument (None without the header), hands it to its service and
    returns what the service returns; `present` makes that result the response body, or a
    (body, headers) pair. With a key, the service answers with the stored response, sent as is.
    `headers` documents the response's own headers, beside Idempotent-Replayed.
    """
    schema_instance = schema()

    def decorate(view):
        @functools.wraps(view)
        def respond(*args, idempotency_key: str | None = None, **kwargs):
            if idempotency_key is None:
                return present(view(*args, idempotency=None, **kwargs))
            request_print = fingerprint(request.method, request.path, request.get_json())
            render = functools.partial(_render, status, schema_instance, present)
            idempotency = Idempotency(identity.scoped_idempotency_key(idempotency_key), request_print, render)
            return _to_response(view(*args, idempotency=idempotency, **kwargs))

        documented = blp.response(status, schema, headers={**(headers or {}), **REPLAYED_DOC})(respond)
        return blp.arguments(IdempotencyKeyHeader, location="headers", as_kwargs=True)(documented)

    return decorate


def _render(status: int, schema: Schema, present: Callable[[Any], Any], outcome: Any) -> StoredResponse:
    """The response to `outcome`, a service result or a refusal, exactly as it is sent and stored."""
    if isinstance(outcome, DomainError):
        response = errors.domain_problem(outcome)
    else:
        body, _, headers = unpack_tuple_response(present(outcome))
        response = jsonify(schema.dump(body))  # as flask-smorest renders a response without a key
        response.status_code = status
        response.headers.update(headers or {})
    kept = {name: response.headers[name] for name in STORED_HEADERS if name in response.headers}
    return StoredResponse(response.status_code, kept, response.get_data())


def _to_response(stored: StoredResponse) -> Response:
    response = Response(stored.body, status=stored.status, headers=stored.headers)
    if stored.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return response
