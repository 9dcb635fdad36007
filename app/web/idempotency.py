"""Safe retries with `Idempotency-Key`, the service-layer half (the HTTP half: app/web/idempotent_response.py).

In the one transaction of a request with a key: claim the key (insert its row), make the effect,
render the response and store it in the key's row, commit. So the effect and its stored response
commit together or not at all, and a key whose request failed (5xx, lost connection, killed worker)
leaves no trace: a retry with it simply goes ahead.

A repeat that arrives while the first is in flight waits on the key's unique index until the first
commits, then gets its stored response; lock_timeout bounds that wait (then 409
request_in_progress). A committed key row always holds its response, since the row commits with it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from app.booking.domain import DomainError, IdempotencyKeyReused, RequestInProgress
from app.database.engine import sqlstate

LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout expired

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


@dataclass(frozen=True)
class StoredResponse:
    """A response as sent the first time, and as replayed: status, replayable headers, exact body."""

    status: int
    headers: dict[str, str]
    body: bytes
    replayed: bool = False


@dataclass(frozen=True)
class Idempotency:
    """A request's key and fingerprint, and how to render its outcome (a result or a DomainError)."""

    key: str
    fingerprint: str
    render: Callable[[Any], StoredResponse]


def fingerprint(method: str, path: str, body: Any) -> str:
    """sha256 of method, path and the body as canonical JSON: key order and spacing do not count."""
    # ensure_ascii: a lone surrogate in a string (valid JSON, not valid UTF-8) must still hash.
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def respond_once(conn: Connection, idempotency: Idempotency, work: Callable[[Connection], Any]) -> StoredResponse:
    """Within the caller's transaction: replay the key's stored response, or run `work` and store its.

    A refusal by the rules (DomainError: 404, 409) is a final answer, stored like a success. Anything
    else raised propagates, and the caller's rollback takes the key's row with it.
    """
    stored = _claim(conn, idempotency)
    if stored is not None:
        return stored
    try:
        outcome = work(conn)
    except DomainError as refusal:
        outcome = refusal
    response = idempotency.render(outcome)
    parameters = {"status": response.status, "headers": json.dumps(response.headers), "body": response.body}
    conn.execute(SAVE, {"key": idempotency.key, **parameters})
    return response


def purge_expired(engine: Engine, retention_s: int, batch_size: int = 1000) -> int:
    """Delete the keys older than `retention_s`, a short transaction per batch; return how many."""
    total, batch = 0, batch_size
    while batch == batch_size:
        with engine.begin() as conn:
            batch = conn.execute(PURGE_BATCH, {"retention_s": retention_s, "batch_size": batch_size}).rowcount
        total += batch
    return total


def _claim(conn: Connection, idempotency: Idempotency) -> StoredResponse | None:
    """None once this transaction owns the key; else the response stored with it, to replay."""
    try:
        row = conn.execute(CLAIM, {"key": idempotency.key, "fingerprint": idempotency.fingerprint}).one()
    except DBAPIError as error:
        if sqlstate(error) == LOCK_NOT_AVAILABLE:
            raise RequestInProgress() from error
        raise
    if row.status is None:
        return None
    if row.fingerprint != idempotency.fingerprint:
        raise IdempotencyKeyReused()
    return StoredResponse(row.status, row.headers, bytes(row.body), replayed=True)
