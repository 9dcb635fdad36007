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
from dataclasses import dataclass, fields, replace
from datetime import datetime
from functools import partial
from typing import ClassVar, Generic, TypeVar

import structlog
from sqlalchemy import Connection, Engine, Executable, Row, literal_column, select, text
from sqlalchemy.exc import DBAPIError

from app.booking.domain import (
    AUTO,
    DEFAULT_MAX_PER_BOOKING,
    DEFAULT_OFFER_TTL_SECONDS,
    STANDARD,
    Booking,
    BookingItem,
    BookingNotFound,
    Cancellation,
    Event,
    EventNotFound,
    HistoryPage,
    HoldConfirmation,
    Items,
    LedgerEntry,
    OfferAcceptance,
    TicketType,
    TicketTypeChange,
    UserBookingsPage,
    items_of,
    parse_event_id,
    raise_unless_ok,
)
from app.database.engine import fetch_autocommit, sqlstate
from app.database.group_commit import Batcher
from app.database.tables import events

# The request id goes into the ledger (booking_events) that the functions append to.
BOOK = text("SELECT * FROM book_ticket(:event_id, :user_id, :request_id, :quantity, :item_types, :item_quantities)")
# book_many's row as the raw cursor of the batched path returns it (a plain tuple), named: what
# BookTicket.result reads of a Row, at the cost of a tuple.
BookedRow = namedtuple(
    "BookedRow",
    "outcome booking_id booking_status waiting_position booking_created_at "
    "booking_updated_at booking_quantity tickets_ahead booking_hold_expires_at item_types item_quantities "
    "item_tickets_ahead",
)
# In the driver's paramstyle (engine.fetch_autocommit), its columns in BookedRow's order. Lists: text[],
# text[], integer[]; one element per booking, in arrival order; then the bookings' items flattened (each
# booking's count of items, their codes, their quantities), or NULL when no booking of the batch has any.
BOOK_MANY = (
    f"SELECT {', '.join(BookedRow._fields)} FROM book_many(%(event_id)s, %(user_ids)s, %(request_ids)s, %(quantities)s, "
    "%(item_counts)s, %(item_types)s, %(item_quantities)s)"
)
# NULL quantity and items: all of it.
CANCEL = text(
    "SELECT * FROM cancel_booking(:event_id, :user_id, :request_id, :quantity, false, :item_types, :item_quantities)"
)
# The same, only for an unexpired offer, given up whole (POST /api/decline).
DECLINE = text("SELECT * FROM cancel_booking(:event_id, :user_id, :request_id, NULL, true)")
ACCEPT = text("SELECT * FROM accept_offer(:event_id, :user_id, :request_id)")
CONFIRM = text("SELECT * FROM confirm_hold(:event_id, :user_id, :request_id, :payment_reference)")
# The user's active booking if any, else their latest one; `event_exists` tells 404s apart. A waiting
# entry's place comes from the queue's counters (waiting_place.sql, and per item waiting_item_places.sql):
# the same cost at any position. A booking without items (an event of one type) is all of its first type.
# A booking as a read shows it (b: the row, first: its event's first type), and the joins that place it.
BOOKING_READ = """b.id, b.user_id, b.status, b.created_at, b.updated_at, b.quantity,
       place.waiting_position, coalesce(item_places.tickets_ahead, place.tickets_ahead) AS tickets_ahead,
       b.offer_expires_at, b.cancel_reason, b.hold_expires_at, b.payment_reference, b.item_types,
       b.item_quantities, item_places.aheads AS item_tickets_ahead, first.code AS first_code, b.lobby_rank"""
BOOKING_PLACES = """
  LEFT JOIN LATERAL waiting_place(b.event_id, b.queue_ordinal, b.queue_tickets_before) place ON b.status = 'waiting'
  LEFT JOIN LATERAL (
        SELECT a.aheads, (SELECT sum(x) FROM unnest(a.aheads) AS x)::bigint AS tickets_ahead
          FROM waiting_item_places(b.event_id, b.queue_ordinal, b.item_types, b.item_tickets_before) AS a (aheads)
       ) item_places ON b.status = 'waiting' AND b.item_types IS NOT NULL"""
BOOKING_STATUS = text(f"""
SELECT e.id AS event_id, {BOOKING_READ}
  FROM events e
  JOIN ticket_types first ON first.event_id = e.id AND first.position = 1
  LEFT JOIN LATERAL (
        SELECT * FROM bookings b
         WHERE b.event_id = e.id AND b.user_id = :user_id
         ORDER BY b.status = 'cancelled', b.seq DESC
         LIMIT 1) b ON true{BOOKING_PLACES}
 WHERE e.id = :event_id
""")
# An event's row with its types (event_ticket_types.sql), for the reads that show an event.
TICKET_TYPES = literal_column("event_ticket_types(events)").label("ticket_types")
# The code of an event's first type: immutable (codes never change, types are never removed), so cached.
FIRST_TYPE_CODE = text("SELECT code FROM ticket_types WHERE event_id = :event_id AND position = 1")
FIRST_CODES_KEPT = 100_000  # events whose first code a worker keeps; past that it forgets them all

# The event's ledger entries after `after`; one row with NULL seq if there are none, none if no such event.
HISTORY = text("""
SELECT h.seq, h.kind, h.booking_id, h.user_id, h.request_id, h.created_at, h.quantity, h.total_tickets_from,
       h.total_tickets_to, h.item_types, h.item_quantities, h.ticket_type, first_type.code AS first_type,
       h.lobby_rank
  FROM events e
  JOIN ticket_types first_type ON first_type.event_id = e.id AND first_type.position = 1
  LEFT JOIN LATERAL (
        SELECT * FROM booking_events h
         WHERE h.event_id = e.id AND h.seq > :after
         ORDER BY h.seq
         LIMIT :limit) h ON true
 WHERE e.id = :event_id
 ORDER BY h.seq
""")

# A user's bookings across events, newest first, older than the cursor `before` (a bookings.seq);
# ix_bookings_user_bookings (migration 0007) serves it. Each with its items and places, as BOOKING_STATUS.
USER_BOOKINGS = text(f"""
SELECT b.seq, b.event_id, {BOOKING_READ}
  FROM bookings b
  JOIN ticket_types first ON first.event_id = b.event_id AND first.position = 1{BOOKING_PLACES}
 WHERE b.user_id = :user_id AND b.seq < :before
 ORDER BY b.seq DESC
 LIMIT :limit
""")
NEWEST = 2**63 - 1  # a cursor above every bookings.seq (bigint)
BOOKING_FIELDS = [field.name for field in fields(Booking) if field.name != "items"]

# Serialization failure, deadlock: PostgreSQL rolled the whole transaction back, so running it again
# is safe and usually succeeds. Not a lost connection: its COMMIT may have happened.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
WRITE_ATTEMPTS = 3
RETRY_BACKOFF_S = 0.02  # doubled at each attempt, with jitter, so that the contenders part ways

# The event row's columns that the domain Event has; the queue's counters (migration 0008) stay in the database.
EVENT_COLUMNS = [events.c[field.name] for field in fields(Event) if field.name in events.c]

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
        return self.completed(self.result(conn.execute(self.statement, self.parameters()).one()), conn)

    def alone(self, engine: Engine, batcher: Batcher) -> T:
        """Its statement in autocommit mode: the server commits in the same round trip."""
        return self.completed(self.result(autocommit(engine, self.statement, self.parameters())[0]), engine)

    def completed(self, result: T, connectable: Connection | Engine) -> T:
        """The result as it is returned, once what the statement left out is filled in (`connectable` reads it)."""
        return result


# The event and its types in one statement; without types of its own, the trigger add_standard_ticket_type
# gives it `standard` (their position 1 comes first: it then adds nothing).
OPEN_EVENT = text(f"""
WITH opened AS (
    INSERT INTO events (name, total_tickets, available_tickets, max_per_booking, promotion, offer_ttl_seconds,
                        hold_ttl_seconds, ticket_type_count, sales_open_at)
    VALUES (:name, :total_tickets, :total_tickets, :max_per_booking, :promotion, :offer_ttl_seconds,
            :hold_ttl_seconds, greatest(cardinality(CAST(:codes AS text[])), 1), :sales_open_at)
    RETURNING {", ".join(column.name for column in EVENT_COLUMNS)}),
types AS (
    INSERT INTO ticket_types (event_id, position, code, name, total_tickets, max_per_booking)
    SELECT opened.id, t.position, t.code, t.name, t.total_tickets, t.max_per_booking
      FROM opened, unnest(CAST(:codes AS text[]), CAST(:names AS text[]), CAST(:totals AS integer[]),
                          CAST(:limits AS integer[])) WITH ORDINALITY AS t (code, name, total_tickets, max_per_booking,
                                                                           position))
SELECT * FROM opened
""")


@dataclass(frozen=True)
class OpenEvent(OneStatementWrite[Event]):
    """Open a new event with `total_tickets` tickets, all available, at most `max_per_booking` per booking;
    freed tickets are confirmed at once (`promotion` auto) or offered for `offer_ttl_seconds` (offer); with
    `hold_ttl_seconds`, tickets a booking gets are held that long for its payment (None: no holds). Its
    `ticket_types` share the event's total (without them it has one, `standard`, holding all of it); with
    one type, that type is the event: the tighter of the two totals, and of the two maxPerBooking, is both.
    With `sales_open_at`, bookings wait in its lobby until then, and are drawn at random (issue 27)."""

    total_tickets: int
    name: str | None = None
    max_per_booking: int = DEFAULT_MAX_PER_BOOKING
    promotion: str = AUTO
    offer_ttl_seconds: int = DEFAULT_OFFER_TTL_SECONDS
    hold_ttl_seconds: int | None = None
    ticket_types: tuple[TicketTypeChange, ...] = ()
    sales_open_at: datetime | None = None

    statement: ClassVar[Executable] = OPEN_EVENT

    def limits(self) -> tuple[int, int]:
        """The event's total and maxPerBooking. One type is the event (update_event.sql keeps it so): a lone
        type asking for less than the event gets it, and the event with it, so the type is never oversold."""
        if len(self.ticket_types) != 1:
            return self.total_tickets, self.max_per_booking
        lone = self.ticket_types[0]
        return (
            min(self.total_tickets, lone.total_tickets or self.total_tickets),
            min(self.max_per_booking, lone.max_per_booking or self.max_per_booking),
        )

    def parameters(self) -> dict:
        types = self.ticket_types if len(self.ticket_types) > 1 else ()
        total_tickets, max_per_booking = self.limits()
        return {
            "name": self.name,
            "total_tickets": total_tickets,
            "max_per_booking": max_per_booking,
            "promotion": self.promotion,
            "offer_ttl_seconds": self.offer_ttl_seconds,
            "hold_ttl_seconds": self.hold_ttl_seconds,
            "codes": [change.code for change in self.ticket_types] or None,
            "names": [change.name for change in self.ticket_types],
            "totals": [change.total_tickets for change in types] or [total_tickets] * len(self.ticket_types),
            "limits": [change.max_per_booking for change in types] or [None] * len(self.ticket_types),
            "sales_open_at": self.sales_open_at,
        }

    def result(self, row: Row) -> Event:
        changes = self.ticket_types or (TicketTypeChange(STANDARD),)
        limits = [change.max_per_booking if len(changes) > 1 else None for change in changes]
        types = tuple(
            TicketType(
                change.code,
                change.name,
                change.total_tickets if len(changes) > 1 else row.total_tickets,
                limit or row.max_per_booking,
                change.total_tickets if len(changes) > 1 else row.total_tickets,
            )
            for change, limit in zip(changes, limits, strict=True)
        )
        return Event(**row._mapping, ticket_types=types)


@dataclass(frozen=True)
class UserWrite(OneStatementWrite[T]):
    """A write for one user at one event, as the booking functions take it: `request_id` is recorded
    in the ledger beside the change(s)."""

    event_id: str
    user_id: str
    request_id: str | None = None

    def parameters(self) -> dict:
        return {"event_id": parse_event_id(self.event_id), "user_id": self.user_id, "request_id": self.request_id}


class NamesItems:
    """A write whose bookings come back without items when their event has one type (its functions read no
    type there, to stay as fast as before): they are given their one item, of the event's first type."""

    event_id: str

    def completed(self, result, connectable: Connection | Engine):
        code = first_type_code(connectable, parse_event_id(self.event_id))
        return named(result, code)


def named(result, code: str):
    """`result` (a Booking, or anything holding bookings in `booking` / `promoted_bookings`) with each
    booking that has no items given its one item, of type `code`."""
    if isinstance(result, Booking):
        return with_one_item(result, code)
    changes = {}
    if getattr(result, "booking", None) is not None:
        changes["booking"] = with_one_item(result.booking, code)
    if getattr(result, "promoted_bookings", None):
        changes["promoted_bookings"] = [with_one_item(booking, code) for booking in result.promoted_bookings]
    return replace(result, **changes)


def with_one_item(booking: Booking, code: str) -> Booking:
    if booking.items is not None:
        return booking
    return replace(booking, items=(BookingItem(code, booking.quantity, booking.tickets_ahead),))


_first_codes: dict[uuid.UUID, str] = {}


def first_type_code(connectable: Connection | Engine, event_uuid: uuid.UUID) -> str:
    """The code of the event's first type, read once per worker (it never changes)."""
    code = _first_codes.get(event_uuid)
    if code is None:
        code = _read_first_code(connectable, event_uuid)
        if len(_first_codes) >= FIRST_CODES_KEPT:
            _first_codes.clear()
        _first_codes[event_uuid] = code
    return code


def _read_first_code(connectable: Connection | Engine, event_uuid: uuid.UUID) -> str:
    if isinstance(connectable, Engine):
        with connectable.connect() as conn:
            return _read_first_code(conn, event_uuid)
    return connectable.execute(FIRST_TYPE_CODE, {"event_id": event_uuid}).scalar_one()


def item_columns(items: Items | None) -> dict:
    """The items as the booking functions take them: their codes, and their quantities."""
    if items is None:
        return {"item_types": None, "item_quantities": None}
    return {"item_types": [code for code, _ in items], "item_quantities": [quantity for _, quantity in items]}


@dataclass(frozen=True)
class BookTicket(NamesItems, UserWrite[Booking]):
    """Give `user_id` `quantity` tickets if nobody waits and they are all left, else one entry for them
    at the back of the waiting list (all or none; the event's limits are checked in book_ticket). With
    `items` ((code, quantity) pairs, quantity then None), tickets of those types, all or none, by the
    FIFO rule with types."""

    quantity: int | None = 1
    items: Items | None = None

    statement: ClassVar[Executable] = BOOK

    def parameters(self) -> dict:
        return {**super().parameters(), "quantity": self.quantity, **item_columns(self.items)}

    def alone(self, engine: Engine, batcher: Batcher) -> Booking:
        """With the bookings of the event that queue in this worker meanwhile, as one book_many statement."""
        event_uuid = parse_event_id(self.event_id)
        item = (self.user_id, self.request_id, self.quantity, self.items)
        return self.completed(self.result(batcher.submit(event_uuid, item, partial(_book_many, engine))), engine)

    def result(self, row: Row | BookedRow) -> Booking:
        raise_unless_ok(
            row.outcome, event_id=self.event_id, user_id=self.user_id, quantity=self.quantity, items=self.items
        )
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
            items=items_of(row.item_types, row.item_quantities, row.item_tickets_ahead),
        )


def _book_many(
    engine: Engine, event_uuid: uuid.UUID, bookings: Sequence[tuple[str, str | None, int | None, Items | None]]
) -> list[BookedRow]:
    """One `book_many` statement for (user_id, request_id, quantity, items): book_ticket's row for each, in order.

    On the raw DBAPI cursor (engine.fetch_autocommit): the one statement of a booking without a key."""
    user_ids, request_ids, quantities, items = (list(column) for column in zip(*bookings, strict=True))
    parameters = {
        "event_id": event_uuid,
        "user_ids": user_ids,
        "request_ids": request_ids,
        "quantities": quantities,
        **_flattened(items),
    }
    rows = _with_retries(partial(fetch_autocommit, engine, BOOK_MANY, parameters))
    return [BookedRow._make(row) for row in rows]


def _flattened(items: list[Items | None]) -> dict:
    """The bookings' items as book_many takes them: each one's count, then all codes and all quantities;
    NULLs when none has items (the usual batch, of an event of one type)."""
    if not any(items):
        return {"item_counts": None, "item_types": None, "item_quantities": None}
    pairs = [pair for booking_items in items for pair in booking_items or ()]
    return {
        "item_counts": [len(booking_items or ()) for booking_items in items],
        "item_types": [code for code, _ in pairs],
        "item_quantities": [quantity for _, quantity in pairs],
    }


@dataclass(frozen=True)
class CancelBooking(NamesItems, UserWrite[Cancellation]):
    """Cancel the user's active booking, or only `quantity` of its tickets, or with `items` only those
    (None: all of them); freed tickets go at once to the waiting entries by the FIFO rule (cancel_booking.sql)."""

    quantity: int | None = None
    items: Items | None = None

    statement: ClassVar[Executable] = CANCEL

    def parameters(self) -> dict:
        return {**super().parameters(), "quantity": self.quantity, **item_columns(self.items)}

    def result(self, row: Row) -> Cancellation:
        raise_unless_ok(
            row.outcome, event_id=self.event_id, user_id=self.user_id, quantity=self.quantity, items=self.items
        )
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
            items=items_of(row.booking_item_types, row.booking_item_quantities, row.booking_item_tickets_ahead),
            lobby_rank=row.booking_lobby_rank,
        )
        return Cancellation(booking=booking, promoted_bookings=promoted_bookings_of(row, event_uuid))


@dataclass(frozen=True)
class DeclineOffer(CancelBooking):
    """Give up the user's unexpired offer, whole: cancelled as `declined`, its tickets to the next
    entries by the FIFO rule (offered again in offer mode)."""

    statement: ClassVar[Executable] = DECLINE


@dataclass(frozen=True)
class SettlingWrite(NamesItems, UserWrite[T]):
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
            items=items_of(row.booking_item_types, row.booking_item_quantities),
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
    until promoted_hold_expires_at, with holds on), and its items (promoted_items, on an event of several
    types; else None)."""
    columns = zip(
        row.promoted_ids,
        row.promoted_user_ids,
        row.promoted_quantities,
        row.promoted_created_ats,
        row.promoted_updated_ats,
        row.promoted_items or [None] * len(row.promoted_ids),
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
            items=None if items is None else tuple(BookingItem(code, count) for code, count in items),
        )
        for booking_id, user_id, quantity, created_at, updated_at, items in columns
    ]


def event_from(row: Row) -> Event:
    """The Event in a row that holds the event row's columns among others, and its types (`ticket_types`,
    as event_ticket_types.sql renders them)."""
    types = tuple(TicketType(**ticket_type) for ticket_type in row._mapping["ticket_types"] or ())
    return Event(**{column.name: row._mapping[column.name] for column in EVENT_COLUMNS}, ticket_types=types)


# The reads: one statement each, on a connection of their own.


def get_event(engine: Engine, event_id: str) -> Event:
    """The event with its live ticket counts and its types; primary-key reads, no scan of bookings."""
    statement = select(*EVENT_COLUMNS, TICKET_TYPES).where(events.c.id == parse_event_id(event_id))
    with engine.connect() as conn:
        row = conn.execute(statement).one_or_none()
    if row is None:
        raise EventNotFound(event_id)
    return event_from(row)


def get_booking(engine: Engine, event_id: str, user_id: str) -> Booking:
    """The user's active booking at the event, else their latest cancelled one."""
    event_uuid = parse_event_id(event_id)
    with engine.connect() as conn:
        row = conn.execute(BOOKING_STATUS, {"event_id": event_uuid, "user_id": user_id}).one_or_none()
    if row is None:
        raise EventNotFound(event_id)
    if row.id is None:
        raise BookingNotFound(user_id)
    return booking_from(row)


def booking_from(row: Row) -> Booking:
    """The Booking of a read's row: the bookings columns, its place, and its items from their arrays
    (without them, one item of the event's first type, `first_code`)."""
    values = {name: row._mapping[name] for name in BOOKING_FIELDS}
    items = items_of(
        row.item_types,
        row.item_quantities,
        row.item_tickets_ahead,
        first_code=row.first_code,
        quantity=row.quantity,
        tickets_ahead=row.tickets_ahead,
    )
    return Booking(**values, items=items)


def event_history(engine: Engine, event_id: str, after: int = 0, limit: int = 100) -> HistoryPage:
    """The event's ledger entries after entry `after`, oldest first, at most `limit` of them."""
    parameters = {"event_id": parse_event_id(event_id), "after": after, "limit": limit + 1}
    with engine.connect() as conn:
        rows = conn.execute(HISTORY, parameters).all()
    if not rows:
        raise EventNotFound(event_id)
    entries = [_ledger_entry(row) for row in rows if row.seq is not None]
    # One row more than asked for tells whether another page follows.
    if len(entries) <= limit:
        return HistoryPage(entries, next_after=None)
    return HistoryPage(entries[:limit], next_after=entries[limit - 1].seq)


LEDGER_ITEM_COLUMNS = ("item_types", "item_quantities", "first_type")  # read to make an entry's items


def _ledger_entry(row: Row) -> LedgerEntry:
    """A ledger row as an entry: a booking's change with its items (NULL arrays: all of it, of the first type)."""
    entry = {name: value for name, value in row._mapping.items() if name not in LEDGER_ITEM_COLUMNS}
    if row.quantity is not None:
        entry["items"] = items_of(row.item_types, row.item_quantities, first_code=row.first_type, quantity=row.quantity)
    return LedgerEntry(**entry)


def user_bookings(engine: Engine, user_id: str, after: int | None = None, limit: int = 100) -> UserBookingsPage:
    """The user's bookings at every event, newest first, at most `limit`, older than cursor `after`."""
    parameters = {"user_id": user_id, "before": after or NEWEST, "limit": limit + 1}
    with engine.connect() as conn:
        rows = conn.execute(USER_BOOKINGS, parameters).all()
    page = [(row.seq, booking_from(row)) for row in rows]
    # One row more than asked for tells whether another page follows.
    if len(page) <= limit:
        return UserBookingsPage([booking for _, booking in page], next_after=None)
    return UserBookingsPage([booking for _, booking in page[:limit]], next_after=page[limit - 1][0])


def check_database(engine: Engine) -> None:
    """Raise the driver's error unless the database answers a trivial query."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
