"""Webhooks of an organiser's changes through a real receiver: event.updated, one per PATCH that changes
something, and event.cancelled when the event is called off, each with the event as that change left it
and no booking; in the order of the event's changes, even when every first try is refused."""

from __future__ import annotations

from collections import Counter

import pytest
from werkzeug import Request, Response

from tests.helpers.receivers import refused_once_each
from tests.helpers.waiting import wait_until


@pytest.fixture
def organiser(client, admin_headers):
    """The organiser's two writes: `change(event, **body)` (PATCH) and `call_off(event)`; each answers the event."""

    class Organiser:
        @staticmethod
        def change(event: dict, **body) -> dict:
            response = client.patch(f"/api/events/{event['id']}", json=body, headers=admin_headers)
            assert response.status_code == 200, response.get_json()
            return response.get_json()["event"]

        @staticmethod
        def call_off(event: dict) -> dict:
            response = client.post(f"/api/events/{event['id']}/cancel", headers=admin_headers)
            assert response.status_code == 200, response.get_json()
            return response.get_json()["event"]

    return Organiser


@pytest.fixture
def book(client):
    def book_one(event: dict, user: str) -> None:
        response = client.post("/api/book", json={"eventId": event["id"], "userId": user})
        assert response.status_code == 201, response.get_json()

    return book_one


@pytest.fixture
def outbox(client, admin_headers):
    """The types of the messages written for a webhook, oldest change first (its deliveries)."""

    def types(webhook: dict) -> list[str]:
        response = client.get(f"/api/webhooks/{webhook['id']}/deliveries", headers=admin_headers)
        return [delivery["type"] for delivery in response.get_json()["deliveries"]]

    return types


def assert_an_event_message(body: dict, message_type: str, event: dict) -> None:
    """The contract's envelope of an event's message: no booking, the event as the API answered the change."""
    assert list(body) == ["id", "type", "timestamp", "data"] and body["id"].startswith("msg_")
    assert (body["type"], list(body["data"])) == (message_type, ["event"])
    assert body["data"]["event"] == event and body["timestamp"] == event["updatedAt"]


def test_a_call_off_sends_event_cancelled_with_the_event_as_called_off_and_no_booking(
    client, new_event, register, receiver, book, organiser, dispatcher
):
    event = new_event(1)
    register(receiver, eventId=event["id"], types=["event.cancelled"])
    for user in ("holder", "waiter"):
        book(event, user)
    called_off = organiser.call_off(event)
    dispatcher()

    wait_until(lambda: receiver.delivered, "the call-off arrives")

    [body] = receiver.delivered
    assert_an_event_message(body, "event.cancelled", called_off)
    assert called_off == client.get(f"/api/status/{event['id']}").get_json()["event"]
    assert (called_off["status"], called_off["waitingListCount"]) == ("cancelled", 0)


def test_a_call_off_sends_event_cancelled_and_the_bookings_their_booking_cancelled(
    new_event, register, receiver, book, organiser, dispatcher, outbox
):
    event = new_event(1)
    webhook = register(receiver, eventId=event["id"])
    for user in ("holder", "waiter"):
        book(event, user)
    organiser.call_off(event)
    organiser.call_off(event)  # again: it changes nothing and sends nothing
    dispatcher()

    expected = ["booking.confirmed", "booking.waitlisted", "event.cancelled", "booking.cancelled", "booking.cancelled"]
    assert outbox(webhook) == expected
    wait_until(lambda: len(receiver.delivered) == 5, "every message arrives")
    assert Counter(body["type"] for body in receiver.delivered) == Counter(expected)


@pytest.mark.parametrize(
    "body",
    [
        {"totalTickets": 3},
        {"salesOpen": False},
        {"name": "Renamed"},
        {"promotion": "offer"},
        {"maxPerBooking": 2, "offerTtlSeconds": 60},
        {"salesOpen": False, "totalTickets": 3, "name": "All at once"},
    ],
    ids=["capacity", "sales", "name", "promotion", "settings", "several"],
)
def test_each_patch_sends_one_event_updated_with_the_event_as_the_patch_left_it(
    new_event, register, receiver, book, organiser, dispatcher, outbox, body
):
    event = new_event(1)
    for user in ("holder", "waiter"):
        book(event, user)
    webhook = register(receiver, eventId=event["id"], types=["event.updated"])
    changed = organiser.change(event, **body)
    dispatcher()

    assert outbox(webhook) == ["event.updated"]
    wait_until(lambda: receiver.delivered, "the change arrives")
    assert_an_event_message(receiver.delivered[0], "event.updated", changed)


def test_a_capacity_raise_reports_the_event_after_its_promotions(
    new_event, register, receiver, book, organiser, dispatcher
):
    event = new_event(1)
    for user in ("holder", "waiter"):
        book(event, user)
    register(receiver, eventId=event["id"], types=["event.updated"])
    raised = organiser.change(event, totalTickets=2)
    dispatcher()

    wait_until(lambda: receiver.delivered, "the change arrives")

    reported = receiver.delivered[0]["data"]["event"]
    assert reported == raised and (reported["availableTickets"], reported["waitingListCount"]) == (0, 0)


def test_a_patch_that_changes_nothing_sends_nothing(new_event, register, receiver, organiser, outbox):
    event = new_event(1, name="Same")
    webhook = register(receiver, eventId=event["id"])
    organiser.change(event, name="Same", totalTickets=1, salesOpen=True)

    assert outbox(webhook) == []


def test_a_webhook_filtered_by_types_gets_only_those(
    client, new_event, register, receiver, book, organiser, dispatcher, outbox
):
    event = new_event(1)
    webhook = register(receiver, eventId=event["id"], types=["event.updated", "booking.promoted"])
    for user in ("holder", "waiter"):
        book(event, user)
    organiser.change(event, name="Renamed")
    client.post("/api/cancel", json={"eventId": event["id"], "userId": "holder"})  # promotes the waiter
    organiser.call_off(event)
    dispatcher()

    assert outbox(webhook) == ["event.updated", "booking.promoted"]
    wait_until(lambda: len(receiver.delivered) == 2, "both messages arrive")
    assert sorted(body["type"] for body in receiver.delivered) == ["booking.promoted", "event.updated"]


def test_an_events_messages_keep_the_order_of_its_changes_when_each_first_try_is_refused(
    new_event, register, receiver, organiser, dispatcher
):
    event = new_event(1)
    register(receiver, eventId=event["id"], types=["event.updated", "event.cancelled"])
    receiver.answer = refused_once_each()
    told = [
        organiser.change(event, name="First"),
        organiser.change(event, totalTickets=5),
        organiser.change(event, salesOpen=False),
        organiser.call_off(event),
    ]
    dispatcher()

    wait_until(lambda: len(receiver.delivered) == 4, "the four changes arrive")

    # Each message is refused, then accepted, before the next is tried at all.
    ids = [body["id"] for body in receiver.delivered]
    assert [body["id"] for body in receiver.arrivals] == [key for key in ids for _ in range(2)]
    assert [body["data"]["event"] for body in receiver.delivered] == told
    assert [body["type"] for body in receiver.delivered] == ["event.updated"] * 3 + ["event.cancelled"]


def refused_while_about(event: dict):
    """An answer: 500 to every message about `event`, 204 to the others."""

    def answer(request: Request) -> Response:
        about = request.get_json()["data"]["event"]["id"]
        return Response(status=500 if about == event["id"] else 204)

    return answer


def test_an_events_message_does_not_wait_for_another_events(new_event, register, receiver, organiser, dispatcher):
    stuck, other = new_event(1), new_event(1)
    register(receiver, types=["event.updated"])  # every event's
    receiver.answer = refused_while_about(stuck)
    organiser.change(stuck, name="Stuck")
    organiser.change(other, name="Other")
    dispatcher(webhook_retry_schedule=(3600,))  # the stuck event's message stays pending after its refusal

    def names(bodies) -> list[str]:
        return [body["data"]["event"]["name"] for body in list(bodies)]

    wait_until(
        lambda: names(receiver.delivered) and "Stuck" in names(receiver.arrivals),
        "the stuck event's change is refused and the other's delivered",
    )

    assert names(receiver.delivered) == ["Other"]
