"""Webhooks of checkout holds (issue 25) through a real receiver: booking.held (with holdExpiresAt), then
booking.confirmed when paid, or booking.cancelled with cancelReason hold_expired when the background
process's sweeper expires it, and booking.held for the next in line; in order per booking. Every
message's first try is refused (500), so that the order is the dispatcher's doing, not the timing's."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.helpers.receivers import refused_once_each, told, types
from tests.helpers.waiting import wait_until

# The hold's time run out, by the database's clock (which a test cannot move).
HOLD_RUNS_OUT = text("UPDATE bookings SET hold_expires_at = clock_timestamp() WHERE event_id = :e AND status = 'held'")


@pytest.fixture
def held(new_event, register, receiver, client):
    """An event of one ticket with holds on, its webhook at the receiver: `holder` holds it, `waiter` queues."""

    def open_event() -> dict:
        event = new_event(1, holdTtlSeconds=900)
        register(receiver, eventId=event["id"])
        receiver.answer = refused_once_each()
        for user in ("holder", "waiter"):
            assert client.post("/api/book", json={"eventId": event["id"], "userId": user}).status_code == 201
        return event

    return open_event


def test_a_paid_hold_is_told_held_then_confirmed_with_its_reference(client, receiver, held, dispatcher):
    event = held()
    client.post("/api/confirm", json={"eventId": event["id"], "userId": "holder", "paymentReference": "pi_7"})
    dispatcher()

    wait_until(lambda: len(types(receiver, "holder")) == 2, "the holder's two messages arrive")

    hold, paid = (body["data"]["booking"] for body in told(receiver, "holder"))
    assert types(receiver, "holder") == ["booking.held", "booking.confirmed"]
    assert (hold["status"], hold["paymentReference"], hold["holdExpiresAt"] is not None) == ("held", None, True)
    assert (paid["status"], paid["paymentReference"], paid["holdExpiresAt"]) == (
        "confirmed",
        "pi_7",
        hold["holdExpiresAt"],
    )
    assert told(receiver, "holder")[-1]["data"]["event"]["heldTickets"] == 0


def test_a_hold_the_sweeper_expires_is_told_cancelled_hold_expired_and_the_next_is_told_held(
    client, engine, receiver, held, dispatcher
):
    event = held()
    with engine.begin() as conn:
        conn.execute(HOLD_RUNS_OUT, {"e": event["id"]})
    dispatcher()

    wait_until(
        lambda: (len(types(receiver, "holder")), len(types(receiver, "waiter"))) == (2, 2), "all four messages arrive"
    )

    assert types(receiver, "holder") == ["booking.held", "booking.cancelled"]
    cancelled = told(receiver, "holder")[-1]["data"]["booking"]
    assert (cancelled["status"], cancelled["cancelReason"]) == ("cancelled", "hold_expired")
    assert types(receiver, "waiter") == ["booking.waitlisted", "booking.held"]
    promoted = told(receiver, "waiter")[-1]["data"]
    assert promoted["booking"] == client.get(f"/api/booking-status/{event['id']}/waiter").get_json()["booking"]
    assert (promoted["booking"]["status"], promoted["event"]["heldTickets"]) == ("held", 1)
