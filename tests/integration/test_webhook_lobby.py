"""Webhooks of a fair sale opening (issue 27) through a real receiver and the background process, which
draws the lobby itself: no message for joining the lobby; each drawn booking's ordinary message, with its
lobbyRank; then event.sales_opened, with the event's counts as the draw left them."""

from __future__ import annotations

from tests.helpers.lobby import later, open_now
from tests.helpers.receivers import types
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
