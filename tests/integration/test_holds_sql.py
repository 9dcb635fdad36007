"""Checkout holds in the database functions themselves (issue 25), one statement each as the service
sends them: every path that gives tickets holds them when the event has holds on, the event's
heldTickets counter follows, and confirm_hold and expire_holds decide by the database's clock."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from app.operations import audit
from tests.helpers.queue import book_sql, booking_rows, cancel_sql, event_row, open_event, queue_violations

HOLDS_ON = text("UPDATE events SET hold_ttl_seconds = :ttl WHERE id = :event")
BOOK_MANY = text("SELECT * FROM book_many(:event, ARRAY['a', 'b', 'c'], ARRAY['r1', 'r2', 'r3'], ARRAY[2, 1, 1])")
CONFIRM = text("SELECT * FROM confirm_hold(:event, :user, 'test', :reference)")
EXPIRE = text("SELECT * FROM expire_holds(:event, 'sweep')")
RUN_OUT = text("UPDATE bookings SET hold_expires_at = clock_timestamp() WHERE event_id = :event AND status = 'held'")


def held_event(conn, total: int, ttl: int = 600):
    event = open_event(conn, total)
    conn.execute(HOLDS_ON, {"event": event, "ttl": ttl})
    return event


def held_tickets(conn, event) -> tuple[int, int]:
    """The event's heldTickets counter, and the tickets its held bookings hold."""
    rows = booking_rows(conn, event)
    return event_row(conn, event).held_tickets, sum(row.quantity for row in rows if row.status == "held")


def test_a_batch_of_bookings_holds_each_that_gets_tickets_in_one_statement(engine):
    with engine.begin() as conn:
        event = held_event(conn, 3)
        rows = conn.execute(BOOK_MANY, {"event": event}).all()

        assert [row.booking_status for row in rows] == ["held", "held", "waiting"]
        assert all(row.booking_hold_expires_at == row.booking_created_at + timedelta(seconds=600) for row in rows[:2])
        assert rows[2].booking_hold_expires_at is None
        assert held_tickets(conn, event) == (3, 3) and queue_violations(conn, event) == []


def test_with_holds_off_a_booking_is_confirmed_with_no_deadline(engine):
    with engine.begin() as conn:
        row = book_sql(conn, open_event(conn, 1), "a")

    assert (row.booking_status, row.booking_hold_expires_at) == ("confirmed", None)


def test_confirm_and_expiry_keep_the_counter_and_the_invariants(engine):
    with engine.begin() as conn:
        event = held_event(conn, 2)
        for user in ("a", "b", "c"):
            book_sql(conn, event, user)
        confirmed = conn.execute(CONFIRM, {"event": event, "user": "a", "reference": "pi"}).one()
        conn.execute(RUN_OUT, {"event": event})
        swept = conn.execute(EXPIRE, {"event": event}).one()

        assert (confirmed.outcome, confirmed.booking_status, confirmed.repeated) == ("ok", "confirmed", False)
        assert (swept.outcome, swept.expired_holds, swept.promoted_bookings) == ("ok", 1, 1)
        assert [(row.user_id, row.status) for row in booking_rows(conn, event)] == [
            ("a", "confirmed"),
            ("b", "cancelled"),
            ("c", "held"),
        ]
        assert held_tickets(conn, event) == (1, 1) and queue_violations(conn, event) == []
        report = audit.Report()
        audit.check_event(conn, event_row(conn, event), report)
        assert report.problems == []


def test_a_confirm_past_the_deadline_is_refused_and_changes_nothing(engine):
    with engine.begin() as conn:
        event = held_event(conn, 1)
        book_sql(conn, event, "a")
        conn.execute(RUN_OUT, {"event": event})
        refused = conn.execute(CONFIRM, {"event": event, "user": "a", "reference": None}).one()

        assert (refused.outcome, refused.booking_id) == ("hold_expired", None)
        assert [row.status for row in booking_rows(conn, event)] == ["held"]


def test_a_cancel_that_frees_tickets_returns_the_held_status_and_deadline_of_what_it_promotes(engine):
    with engine.begin() as conn:
        event = held_event(conn, 1)
        book_sql(conn, event, "a")
        book_sql(conn, event, "b")
        row = cancel_sql(conn, event, "a")

        assert (row.promoted_status, row.promoted_offer_expires_at) == ("held", None)
        assert row.promoted_hold_expires_at == row.booking_updated_at + timedelta(seconds=600)
        assert held_tickets(conn, event) == (1, 1)
