"""The organisers' use cases: run an event over its life (issue 14), and see who holds and who waits.

The writes are `services.Write`s like the bookings', each one statement under the event's row lock:
`update_event` and `cancel_event` (app/booking/sql/), whose rows this module turns into domain objects.
The reads are one statement each, keyset-paginated on an index (never OFFSET: a deep page costs what
the first does). A whole list, for a CSV export, is the same pages one after another, STREAM_BATCH rows
each, each read in a statement of its own when the one before has been sent: the worker holds one page
however long the list is, and a database connection only while it reads a page, never while the
client is slow to take what was read. So an export reads what the JSON pages would, not one snapshot
(docs/organisers.md says what it promises).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from typing import ClassVar

from sqlalchemy import Connection, Engine, Executable, Row, bindparam, select, text
from sqlalchemy.dialects.postgresql import JSONB

from app.booking import services
from app.booking.domain import (
    BookingItem,
    BookingRow,
    EventCancellation,
    EventChanges,
    EventNotFound,
    EventsPage,
    EventUpdate,
    Page,
    WaitingEntry,
    items_of,
    parse_event_id,
    raise_unless_ok,
)
from app.booking.services import EVENT_COLUMNS, TICKET_TYPES, OneStatementWrite, event_from
from app.database.group_commit import Batcher
from app.database.tables import bookings, events, ticket_types

STREAM_BATCH = 1000  # rows of a page of a whole-list export
# Calling off an event of 2.7 million active bookings at 44 µs each; the lock is held that long at most.
CANCEL_STATEMENT_TIMEOUT_MS = 120_000
LONG_STATEMENTS = text("SELECT set_config('statement_timeout', :timeout, true)")  # SET LOCAL, with a parameter

UPDATE_EVENT = text("""
SELECT u.outcome, (u.event_row).*, u.promoted_ids, u.promoted_user_ids, u.promoted_quantities,
       u.promoted_created_ats, u.promoted_updated_ats, u.promoted_offer_expires_at, u.promoted_status,
       u.promoted_hold_expires_at, u.promoted_items, u.ticket_types
  FROM update_event(:event_id, :request_id, :name, :total_tickets, :max_per_booking, :sales_open, :promotion,
                    :offer_ttl_seconds, :hold_ttl_seconds, :ticket_types, :sales_open_at) u
""").bindparams(bindparam("ticket_types", type_=JSONB(none_as_null=True)))
CANCEL_EVENT = text(
    "SELECT c.outcome, (c.event_row).*, c.cancelled_bookings, event_ticket_types(c.event_row) AS ticket_types "
    "FROM cancel_event(:event_id, :request_id) c"
)

# A page of the waiting list, oldest first, after the entry with seq `after`. The page's first entry
# (`head`) gets its place from the queue's counters (waiting_place.sql); each next one is one further,
# behind the tickets of those before it on the page. Likewise per ticket type (issue 26), on an event of
# several: the first item of each type on the page gets its place from that type's counters
# (waiting_item_places.sql), each next item of that type is behind the tickets of that type before it
# on the page; so a page costs at most one place per type more, however deep it is. One row with NULL
# id if the page is empty, none if no such event.
WAITING_PAGE = text("""
WITH page AS (
        SELECT b.id, b.seq, b.user_id, b.quantity, b.created_at, b.queue_ordinal, b.queue_tickets_before,
               b.item_types, b.item_quantities, b.item_tickets_before
          FROM bookings b
         WHERE b.event_id = :event_id AND b.status = 'waiting' AND b.seq > :after
         ORDER BY b.seq
         LIMIT :limit),
     items AS (
        SELECT p.seq, p.queue_ordinal, i.n, i.code, i.before,
               sum(i.quantity) OVER (PARTITION BY i.code ORDER BY p.seq) - i.quantity AS ahead_on_page
          FROM page p
         CROSS JOIN LATERAL unnest(p.item_types, p.item_quantities, p.item_tickets_before)
               WITH ORDINALITY AS i (code, quantity, before, n)),
     first_items AS (
        SELECT DISTINCT ON (i.code) i.code,
               (waiting_item_places(:event_id, i.queue_ordinal, ARRAY[i.code], ARRAY[i.before]))[1] AS ahead
          FROM items i
         ORDER BY i.code, i.seq),
     item_places AS (
        SELECT i.seq, array_agg(f.ahead + i.ahead_on_page ORDER BY i.n) AS item_tickets_ahead
          FROM items i JOIN first_items f USING (code)
         GROUP BY i.seq)
SELECT w.id, w.seq, w.user_id, w.quantity, w.created_at,
       (place.waiting_position - 1 + row_number() OVER queue)::integer AS position,
       place.tickets_ahead + sum(w.quantity) OVER queue - w.quantity AS tickets_ahead,
       w.item_types, w.item_quantities, ip.item_tickets_ahead, first_type.code AS first_type
  FROM events e
  JOIN ticket_types first_type ON first_type.event_id = e.id AND first_type.position = 1
  LEFT JOIN LATERAL (SELECT p.queue_ordinal, p.queue_tickets_before FROM page p ORDER BY p.seq LIMIT 1) head ON true
  LEFT JOIN LATERAL waiting_place(e.id, head.queue_ordinal, head.queue_tickets_before) place ON true
  LEFT JOIN page w ON true
  LEFT JOIN item_places ip ON ip.seq = w.seq
 WHERE e.id = :event_id
WINDOW queue AS (ORDER BY w.seq)
 ORDER BY w.seq
""")
EVENT_EXISTS = text("SELECT EXISTS (SELECT 1 FROM events WHERE id = :event_id)")
BOOKING_COLUMNS = [bookings.c[field.name] for field in fields(BookingRow) if field.name != "items"]
ITEM_COLUMNS = [bookings.c.item_types, bookings.c.item_quantities]


@dataclass(frozen=True)
class UpdateEvent(OneStatementWrite[EventUpdate]):
    """Change an event's settings; a capacity raise confirms (or offers, or holds) waiting entries by the
    FIFO rule."""

    event_id: str
    changes: EventChanges
    request_id: str | None = None

    statement: ClassVar[Executable] = UPDATE_EVENT

    def parameters(self) -> dict:
        changes = asdict(self.changes)
        # JSON objects of the settings given (update_event.sql: an absent key leaves a setting as it is).
        changes["ticket_types"] = changes["ticket_types"] and [
            {name: value for name, value in change.items() if value is not None} for change in changes["ticket_types"]
        ]
        return {"event_id": parse_event_id(self.event_id), "request_id": self.request_id, **changes}

    def result(self, row: Row) -> EventUpdate:
        raise_unless_ok(
            row.outcome,
            event_id=self.event_id,
            total_tickets=self.changes.total_tickets,
            ticket_types=self.changes.ticket_types,
        )
        event = event_from(row)
        update = EventUpdate(event, services.promoted_bookings_of(row, event.id))
        return services.named(update, event.ticket_types[0].code)


@dataclass(frozen=True)
class CancelEvent(OneStatementWrite[EventCancellation]):
    """Call an event off: every active booking cancelled; again on a cancelled event, nothing changes.

    Its time grows with the event's active bookings (about 44 µs each here, docs/organisers.md), so it
    runs under CANCEL_STATEMENT_TIMEOUT rather than the service's statement timeout, which would refuse
    for ever to call off an event of a few hundred thousand bookings. SET LOCAL needs a transaction:
    alone, it runs in one of its own (its COMMIT is one round trip more while the lock is held).
    """

    event_id: str
    request_id: str | None = None

    statement: ClassVar[Executable] = CANCEL_EVENT

    def parameters(self) -> dict:
        return {"event_id": parse_event_id(self.event_id), "request_id": self.request_id}

    def __call__(self, conn: Connection) -> EventCancellation:
        conn.execute(LONG_STATEMENTS, {"timeout": f"{CANCEL_STATEMENT_TIMEOUT_MS}ms"})  # before the lock is taken
        return super().__call__(conn)

    def alone(self, engine: Engine, batcher: Batcher) -> EventCancellation:
        return services.write(engine, self)

    def result(self, row: Row) -> EventCancellation:
        raise_unless_ok(row.outcome, event_id=self.event_id)
        return EventCancellation(event_from(row), row.cancelled_bookings)


def list_events(engine: Engine, status: str | None, after: int | None, limit: int) -> EventsPage:
    """Events newest first (in the order they were opened), `limit` of them older than event `after`."""
    statement = select(*EVENT_COLUMNS, TICKET_TYPES, events.c.seq).order_by(events.c.seq.desc()).limit(limit + 1)
    if status is not None:
        statement = statement.where(events.c.status == status)
    if after is not None:
        statement = statement.where(events.c.seq < after)
    with engine.connect() as conn:
        rows = conn.execute(statement).all()
    # One row more than asked for tells whether another page follows.
    found = [event_from(row) for row in rows[:limit]]
    return EventsPage(found, next_after=rows[limit - 1].seq if len(rows) > limit else None)


def waiting_list(engine: Engine, event_id: str, after: int, limit: int) -> Page:
    """The event's waiting entries after the one with seq `after`, oldest first, at most `limit`."""
    parameters = {"event_id": parse_event_id(event_id), "after": after, "limit": limit + 1}
    with engine.connect() as conn:
        rows = conn.execute(WAITING_PAGE, parameters).all()
    if not rows:
        raise EventNotFound(event_id)
    return _page([row for row in rows if row.id is not None], limit, WaitingEntry)


def _first_type(event_uuid: uuid.UUID):
    """The code of the event's first ticket type: the type of a booking without items (an event of one)."""
    first = select(ticket_types.c.code).where(ticket_types.c.event_id == event_uuid, ticket_types.c.position == 1)
    return first.scalar_subquery().label("first_type")


def booking_list(engine: Engine, event_id: str, status: str | None, after: int, limit: int) -> Page:
    """The event's bookings (of `status`, if given) after the one with seq `after`, oldest first."""
    event_uuid = parse_event_id(event_id)
    with engine.connect() as conn:
        _require_event(conn, event_uuid, event_id)
        rows = conn.execute(_bookings_query(event_uuid, status, after).limit(limit + 1)).all()
    return _page(rows, limit, BookingRow)


def stream_waiting_list(engine: Engine, event_id: str) -> Iterator[WaitingEntry]:
    """The whole waiting list, oldest first, page after page (EventNotFound at once)."""
    return _pages(functools.partial(waiting_list, engine, event_id, limit=STREAM_BATCH))


def stream_bookings(engine: Engine, event_id: str, status: str | None) -> Iterator[BookingRow]:
    """Every booking of the event (of `status`, if given), oldest first, page after page (EventNotFound at once)."""
    return _pages(functools.partial(booking_list, engine, event_id, status, limit=STREAM_BATCH))


def _pages(page_after: Callable[..., Page]) -> Iterator:
    """The rows of `page_after(after=0)` and of each page after it. The first page is read now, so that
    its refusal (EventNotFound) comes before anything streams; each next one when the last row of the
    one before has been taken."""
    return _rows_from(page_after(after=0), page_after)


def _rows_from(page: Page, page_after: Callable[..., Page]) -> Iterator:
    yield from page.rows
    while page.next_after is not None:
        page = page_after(after=page.next_after)
        yield from page.rows


def _bookings_query(event_uuid: uuid.UUID, status: str | None, after: int):
    # On ix_bookings_event_id_seq; a status is a filter along it (waiting has its own partial index).
    statement = select(*BOOKING_COLUMNS, *ITEM_COLUMNS, _first_type(event_uuid), bookings.c.seq).where(
        bookings.c.event_id == event_uuid, bookings.c.seq > after
    )
    if status is not None:
        statement = statement.where(bookings.c.status == status)
    return statement.order_by(bookings.c.seq)


def _page(rows: list[Row], limit: int, kind: type) -> Page:
    """`kind`s of the first `limit` rows; a row beyond them means another page follows."""
    names = [field.name for field in fields(kind) if field.name != "items"]
    found = [kind(**{name: row._mapping[name] for name in names}, items=_items(row)) for row in rows[:limit]]
    return Page(found, next_after=rows[limit - 1].seq if len(rows) > limit else None)


def _items(row: Row) -> tuple[BookingItem, ...]:
    values = row._mapping
    return items_of(
        row.item_types,
        row.item_quantities,
        values.get("item_tickets_ahead"),
        first_code=row.first_type,
        quantity=row.quantity,
        tickets_ahead=values.get("tickets_ahead"),
    )


def _require_event(conn: Connection, event_uuid: uuid.UUID, event_id: str) -> None:
    if not conn.execute(EVENT_EXISTS, {"event_id": event_uuid}).scalar_one():
        raise EventNotFound(event_id)
