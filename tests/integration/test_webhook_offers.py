"""Webhooks of offers (issue 16) through a real receiver: booking.offered, then booking.confirmed on an
accept or booking.cancelled with its cancelReason (declined, expired), in order per booking, each
payload the booking and event as that change left them. Every message's first try is refused (500), so
a booking's later message is ready while the earlier one is still due again: the order is the
dispatcher's doing, not the timing's."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.helpers.receivers import refused_once_each, told, types
from tests.helpers.waiting import wait_until

OFFER_DUE = text(
    "SELECT bool_and(clock_timestamp() >= offer_expires_at) FROM bookings WHERE event_id = :e AND status = 'offered'"
)


@pytest.fixture
def post(client):
    def post_json(path: str, event: dict, user: str):
        response = client.post(path, json={"eventId": event["id"], "userId": user})
        assert response.status_code in (200, 201), response.get_json()
        return response.get_json()

    return post_json


@pytest.fixture
def offered(new_event, register, receiver, post):
    """An event of one ticket in offer mode, its webhook at the receiver (every message refused once):
    `holder` cancelled, so that `waiter` holds the offer, and `next` queues behind."""

    def open_event(ttl_seconds: int = 3600) -> dict:
        event = new_event(1, promotion="offer", offerTtlSeconds=ttl_seconds)
        register(receiver, eventId=event["id"])
        receiver.answer = refused_once_each()
        for user in ("holder", "waiter", "next"):
            post("/api/book", event, user)
        post("/api/cancel", event, "holder")
        return event

    return open_event


def assert_the_message_tells_the_booking_now(client, event: dict, body: dict, user: str) -> None:
    """A message is the contract's envelope, its booking as the API shows it after the change."""
    assert list(body) == ["id", "type", "timestamp", "data"] and body["id"].startswith("msg_")
    assert body["data"]["booking"] == client.get(f"/api/booking-status/{event['id']}/{user}").get_json()["booking"]
    assert body["timestamp"] == body["data"]["booking"]["updatedAt"]


def assert_the_last_message_tells_the_change(client, event: dict, body: dict, user: str) -> None:
    """The last message of a change: its booking and its event as the API shows them after the change."""
    assert_the_message_tells_the_booking_now(client, event, body, user)
    assert body["data"]["event"] == client.get(f"/api/status/{event['id']}").get_json()["event"]


def test_an_accepted_offer_is_told_offered_then_confirmed(client, receiver, offered, post, dispatcher):
    event = offered()
    post("/api/accept", event, "waiter")
    dispatcher()

    wait_until(lambda: len(types(receiver, "waiter")) == 3, "the waiter's three messages arrive")

    waitlisted, offer, confirmed = told(receiver, "waiter")
    assert [waitlisted["type"], offer["type"], confirmed["type"]] == [
        "booking.waitlisted",
        "booking.offered",
        "booking.confirmed",
    ]
    assert (offer["data"]["booking"]["status"], offer["data"]["booking"]["cancelReason"]) == ("offered", None)
    assert confirmed["data"]["booking"]["offerExpiresAt"] == offer["data"]["booking"]["offerExpiresAt"] is not None
    assert_the_last_message_tells_the_change(client, event, confirmed, "waiter")


def test_a_declined_offer_is_told_offered_then_cancelled_declined_and_the_next_is_told_its_offer(
    client, receiver, offered, post, dispatcher
):
    event = offered()
    post("/api/decline", event, "waiter")
    dispatcher()

    wait_until(
        lambda: (len(types(receiver, "waiter")), len(types(receiver, "next"))) == (3, 2), "all five messages arrive"
    )

    assert types(receiver, "waiter") == ["booking.waitlisted", "booking.offered", "booking.cancelled"]
    cancelled = told(receiver, "waiter")[-1]["data"]["booking"]
    assert (cancelled["status"], cancelled["cancelReason"]) == ("cancelled", "declined")
    assert types(receiver, "next") == ["booking.waitlisted", "booking.offered"]
    assert_the_last_message_tells_the_change(client, event, told(receiver, "next")[-1], "next")


@pytest.fixture
def expired_by_the_sweeper(client, admin_headers, engine, offered, dispatcher):
    """The offered event with a TTL of one second, whose offer the dispatcher's own sweeper expires once
    it is due: its offer and its expiry are then pending at once. The next entry's offer, made by the
    sweep, is for an hour, so that it is still held when its messages are read."""

    def expire() -> dict:
        event = offered(ttl_seconds=1)
        client.patch(f"/api/events/{event['id']}", json={"offerTtlSeconds": 3600}, headers=admin_headers)

        def due() -> bool:
            with engine.connect() as conn:
                return conn.execute(OFFER_DUE, {"e": event["id"]}).scalar_one()

        wait_until(due, "the waiter's offer is past its time")
        dispatcher()
        return event

    return expire


def test_an_offer_the_sweeper_expires_is_told_cancelled_expired_after_its_deadline_and_the_next_offered(
    client, receiver, expired_by_the_sweeper
):
    event = expired_by_the_sweeper()
    wait_until(
        lambda: (len(types(receiver, "waiter")), len(types(receiver, "next"))) == (3, 2), "all five messages arrive"
    )

    assert types(receiver, "waiter") == ["booking.waitlisted", "booking.offered", "booking.cancelled"]
    offer, cancelled = (body["data"]["booking"] for body in told(receiver, "waiter")[1:])
    assert (cancelled["status"], cancelled["cancelReason"]) == ("cancelled", "expired")
    assert cancelled["offerExpiresAt"] == offer["offerExpiresAt"] <= cancelled["updatedAt"]
    assert_the_message_tells_the_booking_now(client, event, told(receiver, "waiter")[-1], "waiter")
    assert types(receiver, "next") == ["booking.waitlisted", "booking.offered"]
    assert_the_message_tells_the_booking_now(client, event, told(receiver, "next")[-1], "next")


def test_the_sweepers_messages_report_the_event_as_the_sweep_left_it(client, receiver, expired_by_the_sweeper):
    event = expired_by_the_sweeper()
    wait_until(
        lambda: (len(types(receiver, "waiter")), len(types(receiver, "next"))) == (3, 2), "all five messages arrive"
    )

    assert_the_last_message_tells_the_change(client, event, told(receiver, "next")[-1], "next")


def test_a_capacity_raise_in_offer_mode_is_told_as_offers_with_the_raised_event(
    client, admin_headers, new_event, register, receiver, post, dispatcher
):
    event = new_event(1, promotion="offer", offerTtlSeconds=3600)
    register(receiver, eventId=event["id"], types=["booking.offered"])
    for user in ("holder", "first", "second"):
        post("/api/book", event, user)
    client.patch(f"/api/events/{event['id']}", json={"totalTickets": 3}, headers=admin_headers)
    dispatcher()

    wait_until(lambda: len(receiver.delivered) == 2, "both offers arrive")

    assert (types(receiver, "first"), types(receiver, "second")) == (["booking.offered"], ["booking.offered"])
    assert [body["data"]["event"]["totalTickets"] for body in receiver.delivered] == [3, 3]
    assert_the_last_message_tells_the_change(client, event, told(receiver, "second")[-1], "second")


def test_an_event_called_off_is_told_as_cancelled_bookings_of_a_cancelled_event(
    client, admin_headers, new_event, register, receiver, post, dispatcher
):
    event = new_event(1)
    register(receiver, eventId=event["id"], types=["booking.cancelled"])
    for user in ("holder", "waiter"):
        post("/api/book", event, user)
    client.post(f"/api/events/{event['id']}/cancel", headers=admin_headers)
    dispatcher()

    wait_until(lambda: len(receiver.delivered) == 2, "both cancellations arrive")

    # Two bookings' messages: no order between them is promised (they may be sent at once).
    assert sorted(body["data"]["booking"]["userId"] for body in receiver.delivered) == ["holder", "waiter"]
    assert_the_last_message_tells_the_change(client, event, told(receiver, "waiter")[-1], "waiter")
