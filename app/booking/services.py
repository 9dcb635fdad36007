"""The service layer: one function per use case, each owning its transaction.

The booking rules themselves (who gets a ticket, who waits, who is promoted) live in the database
functions `book_ticket` and `cancel_booking` (current definitions: app/booking/sql/<function>.sql): each takes
the event row lock with `SELECT ... FOR UPDATE` and does its work in the same round trip, because on
a hot event the time that lock is held bounds the throughput. This module turns their outcomes into
domain objects and domain errors.

A write with an Idempotency-Key goes through `write`, which opens a transaction where the key is
claimed, the effect made and the response stored (app/web/idempotency.py). A booking or cancellation
without a key is one statement in autocommit mode (`_autocommit`), a transaction of its own that
the server commits in the same round trip, so the event lock is not held while a COMMIT travels; a
booking also joins the other bookings of its event that queue in this process (app/database/group_commit.py)
and goes with them as one `book_many` statement. Both run again, a bounded number of times, a
transaction that PostgreSQL aborted to resolve a deadlock or a serialization failure.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import fields
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import structlog
from sqlalchemy import Connection, Engine, Row, insert, select, text
from sqlalchemy.exc import DBAPIError

from app.booking import announcements as domain_events
from app.database import group_commit
from app.booking.domain import (
    CANCELLED,
    CONFIRMED,
    AlreadyBooked,
    AlreadyCancelled,
    Booking,
    BookingNotFound,
    Cancellation,
    Event,
    EventNotFound,
    HistoryPage,
    LedgerEntry,
    parse_event_id,
)
from app.database.engine import sqlstate
from app.web.idempotency import Idempotency, StoredResponse, respond_once
from app.database.tables import events

# The request id goes into the ledger (booking_events) that the functions append to.
BOOK = text("SELECT * FROM book_ticket(:event_id, :user_id, :request_id)")
BOOK_MANY = text("SELECT * FROM book_many(:event_id, :user_ids, :request_ids)")  # lists: text[]
CANCEL = text("SELECT * FROM cancel_booking(:event_id, :user_id, :request_id)")
# The user's active booking if any, else their latest one; `event_exists` tells 404s apart.
BOOKING_STATUS = text("""
SELECT e.id AS event_id, b.id, b.user_id, b.status, b.created_at, b.updated_at,
       CASE WHEN b.status = 'waiting' THEN
            (SELECT count(*) FROM bookings w
              WHERE w.event_id = e.id AND w.status = 'waiting' AND w.seq <= b.seq)
       END AS waiting_position
  FROM events e
  LEFT JOIN LATERAL (
        SELECT * FROM bookings b
         WHERE b.event_id = e.id AND b.user_id = :user_id
         ORDER BY b.status = 'cancelled', b.seq DESC
         LIMIT 1) b ON true
 WHERE e.id = :event_id
""")

# The event's ledger entries after `after`; one row with NULL seq if there are none, none if no such event.
HISTORY = text("""
SELECT h.seq, h.kind, h.booking_id, h.user_id, h.request_id, h.created_at
  FROM events e
  LEFT JOIN LATERAL (
        SELECT * FROM booking_events h
         WHERE h.event_id = e.id AND h.seq > :after
         ORDER BY h.seq
         LIMIT :limit) h ON true
 WHERE e.id = :event_id
 ORDER BY h.seq
""")

# Serialization failure, deadlock: PostgreSQL rolled the whole transaction back, so running it again
# is safe and usually succeeds. Not a lost connection: its COMMIT may have happened.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
WRITE_ATTEMPTS = 3
RETRY_BACKOFF_S = 0.02  # doubled at each attempt, with jitter, so that the contenders part ways

# The event row's columns that the domain Event has; the queue's counters (migration 0007) stay in the database.
EVENT_COLUMNS = [events.c[field.name] for field in fields(Event)]

log = structlog.get_logger("app.booking.services")

# The outcomes of book_ticket / cancel_booking that refuse the request, by the user they concern.
USER_ERRORS = {error.code: error for error in (AlreadyBooked, AlreadyCancelled, BookingNotFound)}


def write(
    engine: Engine,
    work: Callable[[Connection], Any],
    idempotency: Idempotency | None = None,
    announce: Callable[[Any], None] | None = None,
):
    """Run `work(conn)` in a transaction of its own and return its result.

    With `idempotency`, return instead the response stored with the key: `work`'s, rendered and
    stored in the same transaction, or the one a previous request with the key left (a replay).
    A deadlock or serialization failure runs the transaction again, WRITE_ATTEMPTS times in all,
    before the error surfaces (as 503 unavailable). `announce` is told `work`'s result once it has
    committed (app/booking/announcements.py); a replay or a refusal made no change, so it announces nothing.
    """
    value, effect = _with_retries(partial(_transaction, engine, work, idempotency))
    if announce is not None and effect.done:
        announce(effect.result)  # committed: the transaction has ended
    return value


def _transaction(engine: Engine, work: Callable[[Connection], Any], idempotency: Idempotency | None):
    """(the transaction's value, what `work` did in it)."""
    effect = _Effect(work)
    with engine.begin() as conn:
        value = effect(conn) if idempotency is None else respond_once(conn, idempotency, effect)
    return value, effect


T = TypeVar("T")


def _with_retries(attempt: Callable[[], T]) -> T:
    """`attempt()`, run again while PostgreSQL aborts it with a retryable error, WRITE_ATTEMPTS in all."""
    for number in range(1, WRITE_ATTEMPTS + 1):
        try:
            return attempt()
        except DBAPIError as error:
            if number == WRITE_ATTEMPTS or sqlstate(error) not in RETRYABLE_SQLSTATES:
                raise
            log.warning("transaction_retried", attempt=number, sqlstate=sqlstate(error))
            time.sleep(random.uniform(0, RETRY_BACKOFF_S * 2**number))


class _Effect:
    """`work`, remembering whether it ran to the end in this transaction, and its result."""

    def __init__(self, work: Callable[[Connection], Any]) -> None:
        self.work, self.done, self.result = work, False, None

    def __call__(self, conn: Connection) -> Any:
        self.result = self.work(conn)
        self.done = True
        return self.result


def initialize_event(
    engine: Engine, total_tickets: int, name: str | None = None, idempotency: Idempotency | None = None
) -> Event | StoredResponse:
    """Open a new event with `total_tickets` tickets, all available (see `write` for `idempotency`)."""
    return write(engine, partial(_insert_event, total_tickets=total_tickets, name=name), idempotency)


def get_event(engine: Engine, event_id: str) -> Event:
    """The event with its live ticket counts; one primary-key read, no scan of bookings."""
    statement = select(*EVENT_COLUMNS).where(events.c.id == parse_event_id(event_id))
    with engine.connect() as conn:
        row = conn.execute(statement).one_or_none()
    if row is None:
        raise EventNotFound(event_id)
    return Event(**row._mapping)


def book(
    engine: Engine, event_id: str, user_id: str, request_id: str | None = None, idempotency: Idempotency | None = None
) -> Booking | StoredResponse:
    """Give `user_id` a ticket if one is left, else a place at the back of the waiting list.

    `request_id` is recorded in the ledger beside the change; see `write` for `idempotency`.
    Without a key, the booking may share its statement with others of the event (group_commit).
    """
    if idempotency is not None:
        work = partial(_book, event_id=event_id, user_id=user_id, request_id=request_id)
        return write(engine, work, idempotency, announce=domain_events.booked)
    event_uuid = parse_event_id(event_id)
    send = partial(_book_many, engine)
    row = group_commit.batcher(engine).submit(event_uuid, (user_id, request_id), send)
    booking = _booking_from(row, event_id, event_uuid, user_id)
    domain_events.booked(booking)
    return booking


def cancel(
    engine: Engine, event_id: str, user_id: str, request_id: str | None = None, idempotency: Idempotency | None = None
) -> Cancellation | StoredResponse:
    """Cancel the user's active booking; a freed ticket goes at once to the oldest waiting entry.

    `request_id` is recorded in the ledger beside the change(s); see `write` for `idempotency`.
    Without a key, the cancellation is one statement in autocommit mode.
    """
    if idempotency is not None:
        work = partial(_cancel, event_id=event_id, user_id=user_id, request_id=request_id)
        return write(engine, work, idempotency, announce=domain_events.cancelled)
    event_uuid = parse_event_id(event_id)
    parameters = {"event_id": event_uuid, "user_id": user_id, "request_id": request_id}
    cancellation = _cancellation_from(_autocommit(engine, CANCEL, parameters)[0], event_id, event_uuid, user_id)
    domain_events.cancelled(cancellation)
    return cancellation


def get_booking(engine: Engine, event_id: str, user_id: str) -> Booking:
    """The user's active booking at the event, else their latest cancelled one."""
    event_uuid = parse_event_id(event_id)
    with engine.connect() as conn:
        row = conn.execute(BOOKING_STATUS, {"event_id": event_uuid, "user_id": user_id}).one_or_none()
    if row is None:
        raise EventNotFound(event_id)
    if row.id is None:
        raise BookingNotFound(user_id)
    return Booking(**row._mapping)


def event_history(engine: Engine, event_id: str, after: int = 0, limit: int = 100) -> HistoryPage:
    """The event's ledger entries after entry `after`, oldest first, at most `limit` of them."""
    parameters = {"event_id": parse_event_id(event_id), "after": after, "limit": limit + 1}
    with engine.connect() as conn:
        rows = conn.execute(HISTORY, parameters).all()
    if not rows:
        raise EventNotFound(event_id)
    entries = [LedgerEntry(**row._mapping) for row in rows if row.seq is not None]
    # One row more than asked for tells whether another page follows.
    if len(entries) <= limit:
        return HistoryPage(entries, next_after=None)
    return HistoryPage(entries[:limit], next_after=entries[limit - 1].seq)


def check_database(engine: Engine) -> None:
    """Raise the driver's error unless the database answers a trivial query."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _insert_event(conn: Connection, total_tickets: int, name: str | None) -> Event:
    statement = (
        insert(events)
        .values(name=name, total_tickets=total_tickets, available_tickets=total_tickets)
        .returning(*EVENT_COLUMNS)
    )
    return Event(**conn.execute(statement).one()._mapping)


def _book(conn: Connection, event_id: str, user_id: str, request_id: str | None) -> Booking:
    event_uuid = parse_event_id(event_id)
    row = conn.execute(BOOK, {"event_id": event_uuid, "user_id": user_id, "request_id": request_id}).one()
    return _booking_from(row, event_id, event_uuid, user_id)


def _book_many(engine: Engine, event_uuid: uuid.UUID, bookings: Sequence[tuple[str, str | None]]) -> list[Row]:
    """One `book_many` statement for (user_id, request_id) pairs: book_ticket's row for each, in order."""
    user_ids, request_ids = (list(column) for column in zip(*bookings))
    return _autocommit(engine, BOOK_MANY, {"event_id": event_uuid, "user_ids": user_ids, "request_ids": request_ids})


def _autocommit(engine: Engine, statement, parameters: dict) -> list[Row]:
    """The rows of `statement` run as a transaction of its own, committed by the server in the same
    round trip: the event lock it takes is not held while a COMMIT travels back and forth."""

    def attempt() -> list[Row]:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            return conn.execute(statement, parameters).all()

    return _with_retries(attempt)


def _booking_from(row: Row, event_id: str, event_uuid: uuid.UUID, user_id: str) -> Booking:
    """The booking that book_ticket's `row` describes, or its refusal raised as a domain error."""
    _raise_unless_ok(row.outcome, event_id, user_id)
    return Booking(
        id=row.booking_id,
        event_id=event_uuid,
        user_id=user_id,
        status=row.booking_status,
        waiting_position=row.waiting_position,
        created_at=row.booking_created_at,
        updated_at=row.booking_updated_at,
    )


def _cancel(conn: Connection, event_id: str, user_id: str, request_id: str | None) -> Cancellation:
    event_uuid = parse_event_id(event_id)
    row = conn.execute(CANCEL, {"event_id": event_uuid, "user_id": user_id, "request_id": request_id}).one()
    return _cancellation_from(row, event_id, event_uuid, user_id)


def _cancellation_from(row: Row, event_id: str, event_uuid: uuid.UUID, user_id: str) -> Cancellation:
    """The cancellation that cancel_booking's `row` describes, or its refusal raised as a domain error."""
    _raise_unless_ok(row.outcome, event_id, user_id)
    cancelled = Booking(
        row.booking_id, event_uuid, user_id, CANCELLED, None, row.booking_created_at, row.booking_updated_at
    )
    return Cancellation(booking=cancelled, promoted=_promoted_booking(row, event_uuid))


def _promoted_booking(row, event_uuid) -> Booking | None:
    if row.promoted_id is None:
        return None
    return Booking(
        id=row.promoted_id,
        event_id=event_uuid,
        user_id=row.promoted_user_id,
        status=CONFIRMED,
        waiting_position=None,
        created_at=row.promoted_created_at,
        updated_at=row.promoted_updated_at,
    )


def _raise_unless_ok(outcome: str, event_id: str, user_id: str) -> None:
    if outcome == EventNotFound.code:
        raise EventNotFound(event_id)
    if outcome != "ok":
        raise USER_ERRORS[outcome](user_id)
