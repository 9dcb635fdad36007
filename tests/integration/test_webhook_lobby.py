"""Webhooks of a fair sale opening (issue 27) through a real receiver and the background process, which
draws the lobby itself: no message for joining the lobby; each drawn booking's ordinary message, with its
lobbyRank; then event.sales_opened, with the event's counts as the draw left them. The entries the draw queues
at once (queue_lobby.sql) each get their own place in their message, as their booking-status says."""

from __future__ import annotations

from tests.helpers.api import booking_now, event_now
from tests.helpers.lobby import later, open_now
from tests.helpers.receivers import types
from tests.helpers.ticket_types import items
from tests.helpers.ticket_types import types as ticket_types
from tests.helpers.waiting import wait_until


def test_the_draw_tells_each_booking_its_ordinary_message_then_the_sale_opened(
    new_event, register, receiver, client, dispatcher, engine
):
    event = new_event(1, salesOpenAt=later())
    register(receiver, eventId=event["id"])
    for user in ("ann", "bob"):
        assert client.post("/api/book", json={"eventId": event["id"], "userId": user}).status_code == 201
    open_now(engine, event["id"])
    dispatcher()

    wait_until(lambda: len(receiver.delivered) == 3, "two bookings' messages and the opening's arrive")

    bodies = list(receiver.delivered)
    ranks = sorted(body["data"]["booking"]["lobbyRank"] for body in bodies if "booking" in body["data"])
    assert sorted(types(receiver, "ann") + types(receiver, "bob")) == ["booking.confirmed", "booking.waitlisted"]
    assert ranks == [1, 2]
    opened = next(body for body in bodies if body["type"] == "event.sales_opened")["data"]["event"]
    assert (opened["bookedTickets"], opened["waitingListCount"], opened["lobbyCount"]) == (1, 1, 0)
    assert opened["drawnAt"] is not None


def places_in_messages_and_replies(client, receiver, event: dict, users: list[str]) -> tuple[dict, dict]:
    """Each waiting user's place (position, tickets ahead, items) in their booking.waitlisted message, and in
    their booking-status reply, once the draw is done and every waiting user's message has arrived."""
    wait_until(lambda: event_now(client, event)["drawnAt"], "the draw is done")
    place = ("waitingPosition", "ticketsAhead", "items")
    replies = {user: booking_now(client, event, user) for user in users}
    waiting = {
        user: {key: reply[key] for key in place} for user, reply in replies.items() if reply["status"] == "waiting"
    }

    def told() -> dict:
        return {
            body["data"]["booking"]["userId"]: {key: body["data"]["booking"][key] for key in place}
            for body in list(receiver.delivered)
            if body["type"] == "booking.waitlisted"
        }

    wait_until(lambda: told().keys() == waiting.keys(), "each waiting user's message arrives")
    return told(), waiting


def test_entries_queued_at_once_are_each_told_their_own_place(
    new_event, register, receiver, client, dispatcher, engine
):
    event = new_event(2, salesOpenAt=later())
    register(receiver, eventId=event["id"])
    users = [f"user-{n}" for n in range(6)]
    for n, user in enumerate(users):
        client.post("/api/book", json={"eventId": event["id"], "userId": user, "quantity": 1 + n % 2})
    open_now(engine, event["id"])
    dispatcher()

    told, replies = places_in_messages_and_replies(client, receiver, event, users)

    assert len(told) >= 4
    assert sorted(place["waitingPosition"] for place in told.values()) == list(range(1, len(told) + 1))
    assert told == replies


def test_entries_with_items_queued_at_once_are_each_told_their_own_place_in_each_type(
    new_event, register, receiver, client, dispatcher, engine
):
    event = new_event(1, salesOpenAt=later(), ticketTypes=ticket_types(("adult", 1), ("child", 1)))
    register(receiver, eventId=event["id"])
    users = [f"user-{n}" for n in range(6)]
    for n, user in enumerate(users):
        wanted = items(adult=1) if n % 2 else items(child=1)
        client.post("/api/book", json={"eventId": event["id"], "userId": user, "items": wanted})
    open_now(engine, event["id"])
    dispatcher()

    told, replies = places_in_messages_and_replies(client, receiver, event, users)

    assert len(told) == 5
    assert sorted(place["waitingPosition"] for place in told.values()) == [1, 2, 3, 4, 5]
    assert told == replies
