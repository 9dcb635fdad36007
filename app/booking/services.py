"""The service layer: the use cases, each owning its transaction.

The booking rules themselves (who gets a ticket, who waits, who is promoted) live in the PL/pgSQL
functions `book_ticket` and `cancel_booking` (and `book_many`, which calls `book_ticket` once per
booking), current definitions in app/booking/sql/<function>.sql: each takes the event row lock with `SELECT ... FOR UPDATE` and
does its work in the same round trip, because on a hot event the time that lock is held bounds the
throughput. This module turns their rows into domain objects, and their refusals into the domain
errors of the one table `domain.REFUSALS`.

Each write here is a `OneStatementWrite`: one statement, its parameters, and how its row becomes a result. Called
with a connection, a Write is a plain unit of work in its caller's transaction; that is how a write
with an Idempotency-Key runs, in one transaction with the key's claim and stored response
(app/web/idempotency.py). `Write.alone` runs it as a transaction of its own, the fastest way it can
commit: one statement in autocommit mode, which the server commits in the same round trip, so the
event lock is not held while a COMMIT travels; a booking goes with the other bookings of its event
that queue in this worker, as one `book_many` statement (app/database/group_commit.py). A
transaction that PostgreSQL aborted to resolve a deadlock or a serialization failure runs again, a
bounded number of times. Nothing here announces an outcome: its caller does, once it has committed.
"""

from __future__ import annotations

import random
import time
import uuid
from abc import ABC, abstractmethod
from collections import namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from functools import partial
from typing import ClassVar, Generic, TypeVar

import structlog
from sqlalchemy import Connection, Engine, Executable, Row, insert, select, text
from sqlalchemy.exc import DBAPIError

from app.booking.domain import (
    AUTO,
    DEFAULT_MAX_PER_BOOKING,
    DEFAULT_OFFER_TTL_SECONDS,
    Booking,
    BookingNotFound,
    Cancellation,
    Event,
    EventNotFound,
    HistoryPage,
    HoldConfirmation,
    LedgerEntry,
    OfferAcceptance,
    UserBookingsPage,
    parse_event_id,
    raise_unless_ok,
)
from app.database.engine import fetch_autocommit, sqlstate
from app.database.group_commit import Batcher
from app.database.tables import events

# The request id goes into the ledger (booking_events) that the functions append to.
BOOK = text("SELECT * FROM book_ticket(:event_id, :user_id, :request_id, :quantity)")
# book_many's row as the raw cursor of the batched path returns it (a plain tuple), named: what
# BookTicket.result reads of a Row, at the cost of a tuple.
BookedRow = namedtuple(
    "BookedRow",
    "outcome booking_id booking_status waiting_position booking_created_at "
    "booking_updated_at booking_quantity tickets_ahead booking_hold_expires_at",
)
# In the driver's paramstyle (engine.fetch_autocommit), its columns in BookedRow's order. Lists: text[],
# text[], integer[]; one element per booking, in arrival order.
BOOK_MANY = (
    f"SELECT {', '.join(BookedRow._fields)} FROM book_many(%(event_id)s, %(user_ids)s, %(request_ids)s, %(quantities)s)"
)
CANCEL = text("SELECT * FROM cancel_booking(:event_id, :user_id, :request_id, :quantity)")  # NULL: all of it
# The same, only for an unexpired offer, given up whole (POST /api/decline).
DECLINE = text("SELECT * FROM cancel_booking(:event_id, :user_id, :request_id, NULL, true)")
ACCEPT = text("SELECT * FROM accept_offer(:event_id, :user_id, :request_id)")
CONFIRM = text("SELECT * FROM confirm_hold(:event_id, :user_id, :request_id, :payment_reference)")
# The user's active booking if any, else their latest one; `event_exists` tells 404s apart. A waiting
# entry's place comes from the queue's counters (waiting_place.sql): the same cost at any position.
BOOKING_STATUS = text("""
SELECT e.id AS event_id, b.id, b.user_id, b.status, b.created_at, b.updated_at, b.quantity,
       place.waiting_position, place.tickets_ahead, b.offer_expires_at, b.cancel_reason, b.hold_expires_at,
       b.payment_reference, b.lobby_rank
  FROM events e
  LEFT JOIN LATERAL (
        SELECT * FROM bookings b
         WHERE b.event_id = e.id AND b.user_id = :user_id
         ORDER BY b.status = 'cancelled', b.seq DESC
         LIMIT 1) b ON true
  LEFT JOIN LATERAL waiting_place(e.id, b.queue_ordinal, b.queue_tickets_before) place ON b.status = 'waiting'
 WHERE e.id = :event_id
""")

# The event's ledger entries after `after`; one row with NULL seq if there are none, none if no such event.
HISTORY = text("""
SELECT h.seq, h.kind, h.booking_id, h.user_id, h.request_id, h.created_at, h.quantity, h.total_tickets_from,
       h.total_tickets_to, h.lobby_rank
  FROM events e
  LEFT JOIN LATERAL (
        SELECT * FROM booking_events h
         WHERE h.event_id = e.id AND h.seq > :after
         ORDER BY h.seq
         LIMIT :limit) h ON true
 WHERE e.id = :event_id
 ORDER BY h.seq
""")

# A user's bookings across events, newest first, older than the cursor `before` (a bookings.seq);
# ix_bookings_user_bookings (migration 0007) serves it.
USER_BOOKINGS = text("""
SELECT b.seq, b.event_id, b.id, b.user_id, b.status, b.created_at, b.updated_at, b.quantity,
       place.waiting_position, place.tickets_ahead, b.offer_expires_at, b.cancel_reason, b.hold_expires_at,
       b.payment_reference, b.lobby_rank
  FROM bookings b
  LEFT JOIN LATERAL waiting_place(b.event_id, b.queue_ordinal, b.queue_tickets_before) place ON b.status = 'waiting'
 WHERE b.user_id = :user_id AND b.seq < :before
 ORDER BY b.seq DESC
 LIMIT :limit
""")
NEWEST = 2**63 - 1  # a cursor above every bookings.seq (bigint)

# Serialization failure, deadlock: PostgreSQL rolled the whole transaction back, so running it again
# is safe and usually succeeds. Not a lost connection: its COMMIT may have happened.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
WRITE_ATTEMPTS = 3
RETRY_BACKOFF_S = 0.02  # doubled at each attempt, with jitter, so that the contenders part ways

# The event row's columns that the domain Event has; the queue's counters (migration 0008) stay in the database.
EVENT_COLUMNS = [events.c[field.name] for field in fields(Event)]

log = structlog.get_logger("app.booking.services")

T = TypeVar("T")


def write(engine: Engine, work: Callable[[Connection], T]) -> T:
    """`work(conn)` in a transaction of its own, committed; its result.

    A deadlock or serialization failure runs the transaction again, WRITE_ATTEMPTS times in all,
    before the error surfaces (as 503 unavailable).
    """

    def attempt() -> T:
        with engine.begin() as conn:
            return work(conn)

    return _with_retries(attempt)


def autocommit(engine: Engine, statement: Executable, parameters: dict) -> list[Row]:
    """The rows of `statement` run as a transaction of its own, committed by the server in the same
    round trip: the event lock it takes is not held while a COMMIT travels back and forth."""

    def attempt() -> list[Row]:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            return conn.execute(statement, parameters).all()

    return _with_retries(attempt)


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


class Write(ABC, Generic[T]):
    """A write use case, as app/web/idempotency.py `perform` runs every one: called with a connection, a
    unit of work in its caller's transaction (with an Idempotency-Key, the key's); `alone`, a transaction
    of its own."""

    @abstractmethod
    def __call__(self, conn: Connection) -> T:
        """The write as a unit of work, in the caller's transaction."""

    def alone(self, engine: Engine, batcher: Batcher) -> T:
        """The write as a transaction of its own (`batcher`, the worker's group commit, is for the writes
        that can share a statement with others)."""
        return write(engine, self)

    def sealed(self, body: bytes) -> bytes:
        """The response body as it is stored with an Idempotency-Key: as sent, unless it shows a secret."""
        return body

    def unsealed(self, stored: bytes) -> bytes:
        """The response body to replay, from what `sealed` stored."""
        return stored


class OneStatementWrite(Write[T]):
    """A write that is one statement, and the result (or the refusal) that its row means."""

    statement: ClassVar[Executable]

    @abstractmethod
    def parameters(self) -> dict:
        """The statement's parameters; raises EventNotFound, before any round trip, for an id not ours."""

    @abstractmethod
    def result(self, row: Row) -> T:
        """The domain object that the statement's `row` describes, or the refusal it names, raised."""

    def __call__(self, conn: Connection) -> T:
        return self.result(conn.execute(self.statement, self.parameters()).one())

    def alone(self, engine: Engine, batcher: Batcher) -> T:
        """Its statement in autocommit mode: the server commits in the same round trip."""
        return self.result(autocommit(engine, self.statement, self.parameters())[0])


@dataclass(frozen=True)
class OpenEvent(OneStatementWrite[Event]):
    """Open a new event with `total_tickets` tickets, all available, at most `max_per_booking` per booking;
    freed tickets are confirmed at once (`promotion` auto) or offered for `offer_ttl_seconds` (offer); with
    `hold_ttl_seconds`, tickets a booking gets are held that long for its payment (None: no holds); with
    `sales_open_at`, bookings wait in its lobby until then, and are drawn at random (issue 27)."""

    total_tickets: int
    name: str | None = None
    max_per_booking: int = DEFAULT_MAX_PER_BOOKING
    promotion: str = AUTO
    offer_ttl_seconds: int = DEFAULT_OFFER_TTL_SECONDS
    hold_ttl_seconds: int | None = None
    sales_open_at: datetime | None = None

    statement: ClassVar[Executable] = insert(events).returning(*EVENT_COLUMNS)

    def parameters(self) -> dict:
        return {
            "name": self.name,
            "total_tickets": self.total_tickets,
            "available_tickets": self.total_tickets,
            "max_per_booking": self.max_per_booking,
            "promotion": self.promotion,
            "offer_ttl_seconds": self.offer_ttl_seconds,
            "hold_ttl_seconds": self.hold_ttl_seconds,
            "sales_open_at": self.sales_open_at,
        }

    def result(self, row: Row) -> Event:
        return Event(**row._mapping)


@dataclass(frozen=True)
class UserWrite(OneStatementWrite[T]):
    """A write for one user at one event, as the booking functions take it: `request_id` is recorded
    in the ledger beside the change(s)."""

    event_id: str
    user_id: str
    request_id: str | None = None

    def parameters(self) -> dict:
        return {"event_id": parse_event_id(self.event_id), "user_id": self.user_id, "request_id": self.request_id}


@dataclass(frozen=True)
class BookTicket(UserWrite[Booking]):
    """Give `user_id` `quantity` tickets if nobody waits and they are all left, else one entry for them
    at the back of the waiting list (all or none; the event's limits are checked in book_ticket)."""

    quantity: int = 1

    statement: ClassVar[Executable] = BOOK

    def parameters(self) -> dict:
        return {**super().parameters(), "quantity": self.quantity}

    def alone(self, engine: Engine, batcher: Batcher) -> Booking:
        """With the bookings of the event that queue in this worker meanwhile, as one book_many statement."""
        event_uuid = parse_event_id(self.event_id)
        item = (self.user_id, self.request_id, self.quantity)
        return self.result(batcher.submit(event_uuid, item, partial(_book_many, engine)))

    def result(self, row: Row | BookedRow) -> Booking:
        raise_unless_ok(row.outcome, event_id=self.event_id, user_id=self.user_id, quantity=self.quantity)
        return Booking(
            id=row.booking_id,
            event_id=parse_event_id(self.event_id),
            user_id=self.user_id,
            status=row.booking_status,
            waiting_position=row.waiting_position,
            created_at=row.booking_created_at,
            updated_at=row.booking_updated_at,
            quantity=row.booking_quantity,
            tickets_ahead=row.tickets_ahead,
            hold_expires_at=row.booking_hold_expires_at,
        )


def _book_many(
    engine: Engine, event_uuid: uuid.UUID, bookings: Sequence[tuple[str, str | None, int]]
) -> list[BookedRow]:
    """One `book_many` statement for (user_id, request_id, quantity) triples: book_ticket's row for each, in order.

    On the raw DBAPI cursor (engine.fetch_autocommit): the one statement of a booking without a key."""
    user_ids, request_ids, quantities = (list(column) for column in zip(*bookings, strict=True))
    parameters = {"event_id": event_uuid, "user_ids": user_ids, "request_ids": request_ids, "quantities": quantities}
    rows = _with_retries(partial(fetch_autocommit, engine, BOOK_MANY, parameters))
    return [BookedRow._make(row) for row in rows]


@dataclass(frozen=True)
class CancelBooking(UserWrite[Cancellation]):
    """Cancel the user's active booking, or only `quantity` of its tickets (None: all of them); freed
    tickets go at once to the waiting entries by the strict FIFO rule (cancel_booking.sql)."""

    quantity: int | None = None

    statement: ClassVar[Executable] = CANCEL

    def parameters(self) -> dict:
        return {**super().parameters(), "quantity": self.quantity}

    def result(self, row: Row) -> Cancellation:
        raise_unless_ok(row.outcome, event_id=self.event_id, user_id=self.user_id, quantity=self.quantity)
        event_uuid = parse_event_id(self.event_id)
        booking = Booking(
            row.booking_id,
            event_uuid,
            self.user_id,
            row.booking_status,
            row.waiting_position,
            row.booking_created_at,
            row.booking_updated_at,
            row.booking_quantity,
            row.tickets_ahead,
            row.booking_offer_expires_at,
            row.booking_cancel_reason,
            row.booking_hold_expires_at,
            row.booking_payment_reference,
            row.booking_lobby_rank,
        )
        return Cancellation(booking=booking, promoted_bookings=promoted_bookings_of(row, event_uuid))


@dataclass(frozen=True)
class DeclineOffer(CancelBooking):
    """Give up the user's unexpired offer, whole: cancelled as `declined`, its tickets to the next
    entries by the FIFO rule (offered again in offer mode)."""

    statement: ClassVar[Executable] = DECLINE


@dataclass(frozen=True)
class SettlingWrite(UserWrite[T]):
    """A write that settles the user's offer or hold, and returns their booking as it is now."""

    def booking_of(self, row: Row) -> Booking:
        """The booking in accept_offer's or confirm_hold's row (no longer waiting, so it has no place), or the
        refusal the row names, raised."""
        raise_unless_ok(row.outcome, event_id=self.event_id, user_id=self.user_id)
        return Booking(
            row.booking_id,
            parse_event_id(self.event_id),
            self.user_id,
            row.booking_status,
            None,
            row.booking_created_at,
            row.booking_updated_at,
            row.booking_quantity,
            offer_expires_at=row.booking_offer_expires_at,
            hold_expires_at=row.booking_hold_expires_at,
            payment_reference=row.booking_payment_reference,
        )


@dataclass(frozen=True)
class AcceptOffer(SettlingWrite[OfferAcceptance]):
    """Confirm the user's offer (or hold it for its payment, with holds on), if the database's clock says
    it has not expired (accept_offer.sql)."""

    statement: ClassVar[Executable] = ACCEPT

    def result(self, row: Row) -> OfferAcceptance:
        return OfferAcceptance(self.booking_of(row))


@dataclass(frozen=True)
class ConfirmHold(SettlingWrite[HoldConfirmation]):
    """Confirm the user's hold, its payment done, keeping `payment_reference`, if the database's clock says
    it has not expired; a repeat with the same reference is the same answer (confirm_hold.sql)."""

    payment_reference: str | None = None

    statement: ClassVar[Executable] = CONFIRM

    def parameters(self) -> dict:
        return {**super().parameters(), "payment_reference": self.payment_reference}

    def result(self, row: Row) -> HoldConfirmation:
        return HoldConfirmation(self.booking_of(row), row.repeated)


def promoted_bookings_of(row: Row, event_uuid: uuid.UUID) -> list[Booking]:
    """The bookings that a row of cancel_booking or update_event lists as promoted (parallel arrays), oldest
    first, each with the row's promoted_status (offered until promoted_offer_expires_at, in offer mode; held
    until promoted_hold_expires_at, with holds on)."""
    columns = zip(
        row.promoted_ids,
        row.promoted_user_ids,
        row.promoted_quantities,
        row.promoted_created_ats,
        row.promoted_updated_ats,
        strict=True,
    )
    return [
        Booking(
            booking_id,
            event_uuid,
            user_id,
            row.promoted_status,
            None,
            created_at,
            updated_at,
            quantity,
            offer_expires_at=row.promoted_offer_expires_at,
            hold_expires_at=row.promoted_hold_expires_at,
        )
        for booking_id, user_id, quantity, created_at, updated_at in columns
    ]


# The reads: one statement each, on a connection of their own.


def get_event(engine: Engine, event_id: str) -> Event:
    """The event with its live ticket counts; one primary-key read, no scan of bookings."""
    statement = select(*EVENT_COLUMNS).where(events.c.id == parse_event_id(event_id))
    with engine.connect() as conn:
        row = conn.execute(statement).one_or_none()
    if row is None:
        raise EventNotFound(event_id)
    return Event(**row._mapping)


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


def user_bookings(engine: Engine, user_id: str, after: int | None = None, limit: int = 100) -> UserBookingsPage:
    """The user's bookings at every event, newest first, at most `limit`, older than cursor `after`."""
    parameters = {"user_id": user_id, "before": after or NEWEST, "limit": limit + 1}
    with engine.connect() as conn:
        rows = conn.execute(USER_BOOKINGS, parameters).all()
    page = [(row.seq, Booking(**{k: v for k, v in row._mapping.items() if k != "seq"})) for row in rows]
    # One row more than asked for tells whether another page follows.
    if len(page) <= limit:
        return UserBookingsPage([booking for _, booking in page], next_after=None)
    return UserBookingsPage([booking for _, booking in page[:limit]], next_after=page[limit - 1][0])


def check_database(engine: Engine) -> None:
    """Raise the driver's error unless the database answers a trivial query."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
