"""Webhooks of an event of several ticket types (issue 26) through a real receiver: each booking's message
carries its items (and, newly waiting, each item's place), and the event its types, as the API answered
the change that sent it."""

from __future__ import annotations

from tests.helpers.receivers import told
from tests.helpers.waiting import wait_until

TYPES = [
    {"code": "adult", "totalTickets": 8},
    {"code": "child", "totalTickets": 2},
    {"code": "parking", "totalTickets": 2},
]


def test_booking_messages_carry_the_items_and_the_event_its_types_as_the_api_answered(
    client, new_event, register, receiver, dispatcher
):
    event = new_event(8, ticketTypes=TYPES)
    register(receiver, eventId=event["id"])
    replies, statuses = {}, {}
    for user, items in [
        ("ann", {"adult": 2, "child": 2}),
        ("smiths", {"adult": 2, "child": 2}),
        ("bob", {"adult": 1}),
    ]:
        body = {
            "eventId": event["id"],
            "userId": user,
            "items": [{"ticketType": t, "quantity": q} for t, q in items.items()],
        }
        response = client.post("/api/book", json=body)
        assert response.status_code == 201, response.get_json()
        replies[user] = response.get_json()["booking"]
        statuses[user] = client.get(f"/api/status/{event['id']}").get_json()["event"]
    dispatcher()

    wait_until(lambda: all(told(receiver, user) for user in replies), "a message about each booking arrives")

    for user, reply in replies.items():
        (message,) = told(receiver, user)
        assert message["data"]["booking"] == reply
        assert message["data"]["event"]["ticketTypes"] == statuses[user]["ticketTypes"]
    assert replies["bob"]["items"] == [{"ticketType": "adult", "quantity": 1, "ticketsAhead": 2}]
    assert [t["availableTickets"] for t in statuses["bob"]["ticketTypes"]] == [6, 0, 2]


def test_on_an_event_of_one_type_messages_show_its_one_item_and_type(client, new_event, register, receiver, dispatcher):
    event = new_event(1)
    register(receiver, eventId=event["id"])
    for user in ("a", "b"):
        client.post("/api/book", json={"eventId": event["id"], "userId": user})
    dispatcher()

    wait_until(lambda: told(receiver, "a") and told(receiver, "b"), "both messages arrive")

    (confirmed,), (waitlisted,) = told(receiver, "a"), told(receiver, "b")
    assert confirmed["data"]["booking"]["items"] == [{"ticketType": "standard", "quantity": 1}]
    assert waitlisted["data"]["booking"]["items"] == [{"ticketType": "standard", "quantity": 1, "ticketsAhead": 0}]
    assert [t["code"] for t in waitlisted["data"]["event"]["ticketTypes"]] == ["standard"]
