"""The ledger: each state change appends one row to booking_events, in the transaction that makes it."""

from sqlalchemy import select

from app.database.tables import booking_events


def ledger(engine, event_id) -> list[tuple]:
    """(kind, userId, requestId) of the event's ledger rows, in order."""
    statement = (
        select(booking_events.c.kind, booking_events.c.user_id, booking_events.c.request_id)
        .where(booking_events.c.event_id == event_id)
        .order_by(booking_events.c.seq)
    )
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(statement)]


def post(client, path, event, user_id, request_id):
    return client.post(path, json={"eventId": event["id"], "userId": user_id}, headers={"X-Request-ID": request_id})


def test_booking_appends_booked_then_waitlisted_with_the_request_id(client, engine, new_event):
    event = new_event(1)
    post(client, "/api/book", event, "holder", "req-1")
    post(client, "/api/book", event, "waiter", "req-2")

    assert ledger(engine, event["id"]) == [("booked", "holder", "req-1"), ("waitlisted", "waiter", "req-2")]


def test_cancelling_a_ticket_appends_the_cancellation_then_the_promotion_under_one_request_id(
    client, engine, new_event
):
    event = new_event(1)
    post(client, "/api/book", event, "holder", "req-1")
    post(client, "/api/book", event, "waiter", "req-2")
    post(client, "/api/cancel", event, "holder", "req-3")

    assert ledger(engine, event["id"])[2:] == [("cancelled", "holder", "req-3"), ("promoted", "waiter", "req-3")]


def test_cancelling_a_waiting_entry_appends_only_the_cancellation(client, engine, new_event):
    event = new_event(1)
    post(client, "/api/book", event, "holder", "req-1")
    post(client, "/api/book", event, "waiter", "req-2")
    post(client, "/api/cancel", event, "waiter", "req-3")

    assert ledger(engine, event["id"])[2:] == [("cancelled", "waiter", "req-3")]


def test_refused_requests_append_nothing(client, engine, new_event):
    event = new_event(1)
    post(client, "/api/book", event, "holder", "req-1")
    post(client, "/api/book", event, "holder", "again")
    post(client, "/api/cancel", event, "stranger", "nobody")
    post(client, "/api/cancel", event, "holder", "req-2")
    post(client, "/api/cancel", event, "holder", "twice")

    assert [request_id for *_, request_id in ledger(engine, event["id"])] == ["req-1", "req-2"]
