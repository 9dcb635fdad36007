"""How a write runs, with an `Idempotency-Key` or without: the one path from a write's view to its response.

A write's view parses the request and returns the use case to run (a services.Write); `perform` runs it:
- Without a key, the write runs alone, as a transaction of its own (`Write.alone`: a statement in
  autocommit mode, a booking in its event's group commit), and the response is rendered from its result.
  A refusal by the rules propagates as an exception, which app/web/errors.py renders.
- With a key, one transaction (services.write) claims the key (inserts its row), runs the write as a unit
  of work, renders the response, stores it in the key's row and commits. So the effect and its stored
  response commit together or not at all, and a key whose request failed (5xx, lost connection, killed
  worker) leaves no trace: a retry with it simply goes ahead. A refusal by the rules (404, 409) is a final
  answer, rendered by app/web/errors.py and stored like a success.
Either way the outcome is announced once, after the commit (app/booking/announcements.py).

A repeat that arrives while the first is in flight waits on the key's unique index until the first
commits, then gets its stored response; lock_timeout bounds that wait (then 409
request_in_progress). A committed key row always holds its response, since the row commits with it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Response, jsonify, request
from flask_smorest.utils import unpack_tuple_response
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from app.booking import services
from app.booking.announcements import announce
from app.booking.domain import DomainError
from app.database.engine import db, sqlstate
from app.web import errors, identity

LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout expired
REPLAYED_HEADER = "Idempotent-Replayed"
# What a replay needs besides status and body; X-Request-ID is the replaying request's own.
STORED_HEADERS = ("Content-Type", "Location")
REPLAYED_DOC = {
    REPLAYED_HEADER: {
        "description": "`true` when this is the stored response to an earlier request with the same Idempotency-Key",
        "schema": {"type": "string", "enum": ["true"]},
    }
}
# Printable ASCII but the comma: a WSGI server joins repeated headers with commas, so a key holding
# one cannot be told from two keys.
KEY_CHARACTERS = r"^[\x20-\x2b\x2d-\x7e]*$"
_KEY_CHARACTERS = re.compile(KEY_CHARACTERS)

# Inserts the key's row, or, if the key exists, returns the stored row. On a key whose first request is
# still in flight, it waits for that transaction. The no-op DO UPDATE is what makes RETURNING give
# the existing row (as committed, even after our snapshot) and holds it until we commit, out of the
# purge's way. A fresh row has no status yet: that is how the caller tells "ours" from "replay".
CLAIM = text("""
INSERT INTO idempotency_keys AS k (key, fingerprint) VALUES (:key, :fingerprint)
ON CONFLICT (key) DO UPDATE SET key = k.key
RETURNING k.fingerprint, k.status, k.headers, k.body
""")
SAVE = text("UPDATE idempotency_keys SET status = :status, headers = :headers, body = :body WHERE key = :key")
# One batch of expired keys; SKIP LOCKED leaves alone any key a request is using right now.
PURGE_BATCH = text("""
DELETE FROM idempotency_keys WHERE key IN (
    SELECT key FROM idempotency_keys
     WHERE created_at < now() - make_interval(secs => :retention_s)
     ORDER BY created_at
     LIMIT :batch_size
       FOR UPDATE SKIP LOCKED)
""")


def one_printable_key(value: str) -> None:
    if "," in value:
        raise ValidationError("Must be one key, without a comma: a comma is how HTTP joins repeated headers.")
    if not _KEY_CHARACTERS.fullmatch(value):
        raise ValidationError("Must be printable ASCII characters only.")


class IdempotencyKeyHeader(Schema):
    # No example: Swagger UI would send it with every "Try it out", and a key serves one request.
    idempotency_key = fields.String(
        data_key="Idempotency-Key",
        validate=[validate.Length(min=1, max=255), one_printable_key],
        metadata={
            "description": "1..255 printable ASCII characters (space to `~`) other than `,`, sent once, unique "
            "per operation: a retry with the same key and body returns the first response instead of acting "
            "twice (kept at least 24 hours)",
            "pattern": KEY_CHARACTERS,
        },
    )


@dataclass(frozen=True)
class RequestKey:
    """A request's Idempotency-Key and the fingerprint of what it asked for."""

    key: str
    fingerprint: str


@dataclass(frozen=True)
class StoredResponse:
    """A response as sent the first time, and as replayed: status, replayable headers, exact body."""

    status: int
    headers: dict[str, str]
    body: bytes
    replayed: bool = False

    @classmethod
    def of(cls, response: Response) -> StoredResponse:
        kept = {name: response.headers[name] for name in STORED_HEADERS if name in response.headers}
        return cls(response.status_code, kept, response.get_data())

    def to_response(self) -> Response:
        response = Response(self.body, status=self.status, headers=self.headers)
        if self.replayed:
            response.headers[REPLAYED_HEADER] = "true"
        return response


Render = Callable[[Any], Response]


def idempotent_response(blp, status: int, schema: type[Schema] | None, present: Callable[[Any], Any], headers=None):
    """`blp.response(status, schema)` for a write that accepts an `Idempotency-Key` header.

    The view returns the write to run (a services.Write), and `perform` runs it; `present` makes the
    write's result the response body, or a (body, headers) pair (no schema: a body-less 204). `headers`
    documents the response's own headers, beside Idempotent-Replayed.
    """
    render = functools.partial(_render, status, schema and schema(), present)

    def decorate(view):
        @functools.wraps(view)
        def respond(*args, idempotency_key: str | None = None, **kwargs):
            return perform(view(*args, **kwargs), _request_key(idempotency_key), render)

        documented = blp.response(status, schema, headers={**(headers or {}), **REPLAYED_DOC})(respond)
        return blp.arguments(IdempotencyKeyHeader, location="headers", as_kwargs=True)(documented)

    return decorate


def perform(write: services.Write, key: RequestKey | None, render: Render) -> Response:
    """Run `write`, alone without a key, else with the key; announce what it did, once committed."""
    if key is None:
        outcome = write.alone(db.engine, db.batcher)
        response = render(outcome)
    else:
        keyed = functools.partial(_respond_once, key=key, write=write, render=render)
        stored, outcome = services.write(db.engine, keyed)
        response = stored.to_response()
    if outcome is not None:
        announce(outcome)  # committed: the transaction has ended
    return response


def _request_key(idempotency_key: str | None) -> RequestKey | None:
    if idempotency_key is None:
        return None
    key = identity.scoped_idempotency_key(idempotency_key)  # one user's key never replays another's
    # silent: a POST that takes no body (app/web/request_context.py, takes_no_body) has none to read.
    return RequestKey(key, fingerprint(request.method, request.path, request.get_json(silent=True)))


def _respond_once(conn: Connection, key: RequestKey, write: services.Write, render: Render):
    """Within the caller's transaction: (the key's stored response, None) to replay, or (the response
    to `write`, stored with the key, and the write's result: None for a refusal, which changed nothing).

    Anything but a refusal by the rules propagates, and the caller's rollback takes the key's row with it.
    """
    stored = _claim(conn, key, write)
    if stored is not None:
        return stored, None
    try:
        outcome = write(conn)
    except DomainError as refusal:
        outcome, response = None, errors.refused(refusal)
    else:
        response = render(outcome)
    stored = StoredResponse.of(response)
    saved = {"key": key.key, "status": stored.status, "headers": json.dumps(stored.headers)}
    conn.execute(SAVE, {**saved, "body": write.sealed(stored.body)})
    return stored, outcome


def _claim(conn: Connection, key: RequestKey, write: services.Write) -> StoredResponse | None:
    """None once this transaction owns the key; else the response stored with it, to replay."""
    try:
        row = conn.execute(CLAIM, {"key": key.key, "fingerprint": key.fingerprint}).one()
    except DBAPIError as error:
        if sqlstate(error) == LOCK_NOT_AVAILABLE:
            raise errors.RequestInProgress() from error
        raise
    if row.status is None:
        return None
    if row.fingerprint != key.fingerprint:
        raise errors.IdempotencyKeyReused()
    return StoredResponse(row.status, row.headers, write.unsealed(bytes(row.body)), replayed=True)


def _render(status: int, schema: Schema | None, present: Callable[[Any], Any], result: Any) -> Response:
    """The response to a write's result, as flask-smorest renders a view's."""
    body, _, headers = unpack_tuple_response(present(result))
    response = jsonify(body if schema is None else schema.dump(body))
    response.status_code = status
    response.headers.update(headers or {})
    return response


def fingerprint(method: str, path: str, body: Any) -> str:
    """sha256 of method, path and the body as canonical JSON: key order and spacing do not count."""
    # ensure_ascii: a lone surrogate in a string (valid JSON, not valid UTF-8) must still hash.
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def purge_expired(engine: Engine, retention_s: int, batch_size: int = 1000) -> int:
    """Delete the keys older than `retention_s`, a short transaction per batch; return how many."""
    total, batch = 0, batch_size
    while batch == batch_size:
        with engine.begin() as conn:
            batch = conn.execute(PURGE_BATCH, {"retention_s": retention_s, "batch_size": batch_size}).rowcount
        total += batch
    return total
