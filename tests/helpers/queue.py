"""The booking functions called straight in SQL, one statement each as the service sends them, and the
queue's invariants read from the tables (several tickets per booking, migration 0008)."""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, text

from app.booking.domain import CONFIRMED, WAITING

NEW_EVENT = text("""
INSERT INTO events (total_tickets, available_tickets, max_per_booking)
VALUES (:total, :total, :max_per_booking) RETURNING id
""")
BOOK = text("SELECT * FROM book_ticket(:event, :user, 'test', :quantity)")
CANCEL = text("SELECT * FROM cancel_booking(:event, :user, 'test', :quantity)")
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


def open_event(conn: Connection, total: int, max_per_booking: int = 10) -> uuid.UUID:
    return conn.execute(NEW_EVENT, {"total": total, "max_per_booking": max_per_booking}).scalar_one()


def book_sql(conn: Connection, event: uuid.UUID, user: str, quantity: int = 1):
    """book_ticket's row for `user` booking `quantity` tickets."""
    return conn.execute(BOOK, {"event": event, "user": user, "quantity": quantity}).one()


def cancel_sql(conn: Connection, event: uuid.UUID, user: str, quantity: int | None = None):
    """cancel_booking's row for `user` giving up `quantity` tickets (None: the whole booking)."""
    return conn.execute(CANCEL, {"event": event, "user": user, "quantity": quantity}).one()


def event_row(conn: Connection, event: uuid.UUID):
    return conn.execute(EVENT, {"event": event}).one()


def booking_rows(conn: Connection, event: uuid.UUID) -> list:
    return conn.execute(BOOKINGS, {"event": event}).all()


def queue_violations(conn: Connection, event: uuid.UUID) -> list[str]:
    """The contract's invariants for several tickets per booking, read from the tables; [] if all hold."""
    ev, rows = event_row(conn, event), booking_rows(conn, event)
    confirmed = sum(row.quantity for row in rows if row.status == CONFIRMED)
    queue = [row for row in rows if row.status == WAITING]
    found = []
    if confirmed + ev.available_tickets != ev.total_tickets:
        found.append(f"confirmed {confirmed} + available {ev.available_tickets} != total {ev.total_tickets}")
    if queue and queue[0].quantity <= ev.available_tickets:
        found.append(f"the head wants {queue[0].quantity} and {ev.available_tickets} are available")
    expected_places = [(rank, sum(row.quantity for row in queue[: rank - 1])) for rank in range(1, len(queue) + 1)]
    if [(row.waiting_position, row.tickets_ahead) for row in queue] != expected_places:
        found.append("the waiting entries' places are not 1..n with the tickets ahead of each")
    if (ev.waiting_count, ev.waiting_tickets) != (len(queue), sum(row.quantity for row in queue)):
        found.append(f"the event counts {ev.waiting_count} entries / {ev.waiting_tickets} tickets waiting")
    return found
