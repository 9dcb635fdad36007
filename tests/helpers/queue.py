"""The booking functions called straight in SQL, one statement each as the service sends them, and the
queue's invariants read from the tables (several tickets per booking, migration 0008)."""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, text

from app.booking.domain import CONFIRMED, HELD, OFFERED, WAITING

NEW_EVENT = text("""
INSERT INTO events (total_tickets, available_tickets, max_per_booking)
VALUES (:total, :total, :max_per_booking) RETURNING id
""")
BOOK = text("SELECT * FROM book_ticket(:event, :user, 'test', :quantity)")
CANCEL = text("SELECT * FROM cancel_booking(:event, :user, 'test', :quantity)")
DECLINE = text("SELECT * FROM cancel_booking(:event, :user, 'test', NULL, true)")
ACCEPT = text("SELECT * FROM accept_offer(:event, :user, 'test')")
PROMOTION = text("SELECT * FROM update_event(:event, 'test', NULL, :total, NULL, NULL, :promotion, :ttl, :hold_ttl)")
CONFIRM = text("SELECT * FROM confirm_hold(:event, :user, 'test', :reference)")
# Time passing for one event's offers and holds: their deadlines come closer by `seconds` (the clock itself
# cannot move).
TIME_PASSES = text("""
UPDATE bookings
   SET offer_expires_at = offer_expires_at - make_interval(secs => CASE WHEN status = 'offered' THEN :seconds ELSE 0 END),
       hold_expires_at = hold_expires_at - make_interval(secs => CASE WHEN status = 'held' THEN :seconds ELSE 0 END)
 WHERE event_id = :event AND status IN ('offered', 'held')
""")
EVENT = text("SELECT * FROM events WHERE id = :event")
# Every booking of the event, oldest first, with the place the queue's counters give a waiting one.
BOOKINGS = text("""
SELECT b.*, place.waiting_position, place.tickets_ahead
  FROM bookings b
  LEFT JOIN LATERAL waiting_place(b.event_id, b.queue_ordinal, b.queue_tickets_before) place
    ON b.status = 'waiting'
 WHERE b.event_id = :event
 ORDER BY b.seq
""")

# Each offer's (or hold's) deadline, as seconds after the moment it was made (its `offered` or `held`
# ledger entry).
OFFER_SECONDS = text("""
SELECT b.id, round(extract(epoch FROM b.offer_expires_at - o.created_at))::int AS seconds
  FROM bookings b
  JOIN booking_events o ON o.event_id = b.event_id AND o.booking_id = b.id AND o.kind = 'offered'
 WHERE b.event_id = :event AND b.status = 'offered'
""")
HOLD_SECONDS = text("""
SELECT b.id, round(extract(epoch FROM b.hold_expires_at - h.created_at))::int AS seconds
  FROM bookings b
  JOIN booking_events h ON h.event_id = b.event_id AND h.booking_id = b.id AND h.kind = 'held'
 WHERE b.event_id = :event AND b.status = 'held'
""")


def open_event(conn: Connection, total: int, max_per_booking: int = 10) -> uuid.UUID:
    return conn.execute(NEW_EVENT, {"total": total, "max_per_booking": max_per_booking}).scalar_one()


def book_sql(conn: Connection, event: uuid.UUID, user: str, quantity: int = 1):
    """book_ticket's row for `user` booking `quantity` tickets."""
    return conn.execute(BOOK, {"event": event, "user": user, "quantity": quantity}).one()


def cancel_sql(conn: Connection, event: uuid.UUID, user: str, quantity: int | None = None):
    """cancel_booking's row for `user` giving up `quantity` tickets (None: the whole booking)."""
    return conn.execute(CANCEL, {"event": event, "user": user, "quantity": quantity}).one()


def decline_sql(conn: Connection, event: uuid.UUID, user: str):
    """cancel_booking's row for `user` declining their offer (POST /api/decline)."""
    return conn.execute(DECLINE, {"event": event, "user": user}).one()


def accept_sql(conn: Connection, event: uuid.UUID, user: str):
    return conn.execute(ACCEPT, {"event": event, "user": user}).one()


def promotion_sql(
    conn: Connection, event: uuid.UUID, promotion: str, ttl: int, total: int | None = None, hold_ttl: int | None = None
):
    """update_event's row for switching the event's promotion (and its offers' time), its capacity if given,
    and its holds' time if given (HOLDS_OFF: no holds)."""
    parameters = {"event": event, "promotion": promotion, "ttl": ttl, "total": total, "hold_ttl": hold_ttl}
    return conn.execute(PROMOTION, parameters).one()


def confirm_sql(conn: Connection, event: uuid.UUID, user: str, reference: str | None = None):
    return conn.execute(CONFIRM, {"event": event, "user": user, "reference": reference}).one()


def time_passes(conn: Connection, event: uuid.UUID, seconds: int) -> None:
    conn.execute(TIME_PASSES, {"event": event, "seconds": seconds})


def offer_seconds(conn: Connection, event: uuid.UUID) -> dict[uuid.UUID, int]:
    """Each outstanding offer's deadline, in seconds after it was made."""
    return {row.id: row.seconds for row in conn.execute(OFFER_SECONDS, {"event": event})}


def hold_seconds(conn: Connection, event: uuid.UUID) -> dict[uuid.UUID, int]:
    """Each outstanding hold's deadline, in seconds after it was made."""
    return {row.id: row.seconds for row in conn.execute(HOLD_SECONDS, {"event": event})}


def event_row(conn: Connection, event: uuid.UUID):
    return conn.execute(EVENT, {"event": event}).one()


def booking_rows(conn: Connection, event: uuid.UUID) -> list:
    return conn.execute(BOOKINGS, {"event": event}).all()


def queue_violations(conn: Connection, event: uuid.UUID) -> list[str]:
    """The contract's invariants for several tickets per booking, read from the tables; [] if all hold."""
    ev, rows = event_row(conn, event), booking_rows(conn, event)
    # An offer holds its tickets, and so does a hold waiting for its payment.
    held = sum(row.quantity for row in rows if row.status in (CONFIRMED, OFFERED, HELD))
    queue = [row for row in rows if row.status == WAITING]
    found = []
    if held + ev.available_tickets != ev.total_tickets:
        found.append(
            f"confirmed + offered + held {held} + available {ev.available_tickets} != total {ev.total_tickets}"
        )
    if queue and queue[0].quantity <= ev.available_tickets:
        found.append(f"the head wants {queue[0].quantity} and {ev.available_tickets} are available")
    expected_places = [(rank, sum(row.quantity for row in queue[: rank - 1])) for rank in range(1, len(queue) + 1)]
    if [(row.waiting_position, row.tickets_ahead) for row in queue] != expected_places:
        found.append("the waiting entries' places are not 1..n with the tickets ahead of each")
    if (ev.waiting_count, ev.waiting_tickets) != (len(queue), sum(row.quantity for row in queue)):
        found.append(f"the event counts {ev.waiting_count} entries / {ev.waiting_tickets} tickets waiting")
    return found
