"""Ticket types over HTTP (contract v3, "Ticket types"): types on initialize and PATCH, items on book and
cancel, all or none, the FIFO rule with types on every path that frees tickets, per-item places, and the
400s with `errors.items` / `errors.ticketTypes`. One-type events keep every v1/v2 answer (the rest of the
suite), and only gain `ticketTypes` and `items`."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.helpers.api import assert_problem
from tests.helpers.ticket_types import by_code, items, types

FAMILY = [{"ticketType": "adult", "quantity": 2}, {"ticketType": "child", "quantity": 2}]


@pytest.fixture
def booked(book):
    def post(event: dict, user: str, **fields) -> dict:
        response = book(event, user, **fields)
        assert response.status_code == 201, response.get_json()
        return response.get_json()["booking"]

    return post


@pytest.fixture
def booking_status(client):
    def get(event: dict, user: str) -> dict:
        return client.get(f"/api/booking-status/{event['id']}/{user}").get_json()["booking"]

    return get


def statuses(booking_status, event: dict, *users: str) -> list[str]:
    return [booking_status(event, user)["status"] for user in users]


def test_an_event_without_types_shows_its_one_standard_type_and_bookings_show_one_item(
    new_event, booked, status, booking_status
):
    event = new_event(5)
    booked(event, "a", quantity=2)
    booked(event, "b", quantity=4)

    assert status(event)["ticketTypes"] == [
        {
            "code": "standard",
            "name": None,
            "totalTickets": 5,
            "maxPerBooking": 10,
            "availableTickets": 3,
            "waitingTickets": 4,
        }
    ]
    assert booking_status(event, "a")["items"] == [{"ticketType": "standard", "quantity": 2}]
    assert booking_status(event, "b")["items"] == [{"ticketType": "standard", "quantity": 4, "ticketsAhead": 0}]


def test_initialize_with_types_shows_them_in_order_with_shared_capacity(new_event, status):
    event = new_event(
        5, ticketTypes=[*types(("adult", 5), ("child", 3, 2)), {"code": "vip", "totalTickets": 1, "name": "VIP"}]
    )

    assert [
        (t["code"], t["totalTickets"], t["maxPerBooking"], t["availableTickets"]) for t in event["ticketTypes"]
    ] == [("adult", 5, 10, 5), ("child", 3, 2, 3), ("vip", 1, 10, 1)]
    assert status(event)["ticketTypes"] == event["ticketTypes"]


def test_a_lone_type_smaller_than_the_event_caps_the_event_so_the_type_is_never_oversold(new_event, booked, status):
    event = new_event(10, maxPerBooking=5, ticketTypes=types(("vip", 3, 2)))

    assert (event["totalTickets"], event["maxPerBooking"]) == (3, 2)
    assert [(t["totalTickets"], t["maxPerBooking"]) for t in event["ticketTypes"]] == [(3, 2)]
    booked(event, "a", items=items(vip=2))
    assert booked(event, "b", items=items(vip=2))["status"] == "waiting"
    assert by_code(status(event))["vip"]["availableTickets"] == 1


def test_a_booking_gets_all_its_items_or_waits_as_one_entry(new_event, booked, status):
    event = new_event(6, ticketTypes=types(("adult", 6), ("child", 3)))
    first = booked(event, "family", items=FAMILY)
    second = booked(event, "other", items=items(adult=1, child=2))

    assert (first["status"], first["quantity"], first["items"]) == ("confirmed", 4, FAMILY)
    assert (second["status"], second["waitingPosition"], second["ticketsAhead"]) == ("waiting", 1, 0)
    assert second["items"] == [
        {"ticketType": "adult", "quantity": 1, "ticketsAhead": 0},
        {"ticketType": "child", "quantity": 2, "ticketsAhead": 0},
    ]
    after = status(event)
    assert (after["availableTickets"], by_code(after)["child"]["availableTickets"]) == (2, 1)


def test_the_event_cap_is_shared_by_all_types(new_event, booked):
    event = new_event(4, ticketTypes=types(("adult", 4), ("child", 4)))
    booked(event, "a", items=items(adult=3))

    assert booked(event, "b", items=items(child=2))["status"] == "waiting"


def test_an_entry_wanting_only_other_types_goes_ahead_of_one_stuck_on_its_type(
    new_event, booked, cancel, booking_status
):
    event = new_event(10, ticketTypes=types(("adult", 10), ("vip", 2)))
    booked(event, "vip-holder", items=items(vip=2))
    booked(event, "filler", items=items(adult=8))
    booked(event, "wants-vip", items=items(vip=1))  # waits: no vip left
    booked(event, "wants-adult", items=items(adult=2))  # waits: the event is full

    cancel(event, "filler", items=items(adult=3))

    assert statuses(booking_status, event, "wants-vip", "wants-adult") == ["waiting", "confirmed"]


def test_the_event_cap_stops_the_walk_even_for_a_later_entry_that_would_fit(new_event, booked, cancel, booking_status):
    event = new_event(4, ticketTypes=types(("adult", 4), ("child", 4)))
    booked(event, "holder", items=items(adult=4))
    booked(event, "big", items=items(child=3))
    booked(event, "small", items=items(child=1))

    cancel(event, "holder", items=items(adult=2))

    assert statuses(booking_status, event, "big", "small") == ["waiting", "waiting"]


def test_nobody_is_overtaken_by_a_later_entry_wanting_the_same_type(new_event, booked, cancel, booking_status):
    event = new_event(10, ticketTypes=types(("adult", 10), ("child", 2)))
    booked(event, "kids", items=items(child=2))
    booked(event, "first", items=items(adult=1, child=2))  # waits on child
    booked(event, "later", items=items(child=1))  # wants child too: behind `first`

    cancel(event, "kids", items=items(child=1))

    assert statuses(booking_status, event, "first", "later") == ["waiting", "waiting"]
    assert booking_status(event, "later")["items"] == [{"ticketType": "child", "quantity": 1, "ticketsAhead": 2}]


def test_a_new_booking_of_a_free_type_waits_while_an_older_entry_wants_more_than_the_event_has(new_event, booked):
    event = new_event(4, ticketTypes=types(("adult", 4), ("child", 4)))
    booked(event, "holder", items=items(adult=2))
    booked(event, "big", items=items(child=3))

    assert booked(event, "small", items=items(adult=1))["status"] == "waiting"


def test_a_partial_cancel_by_items_releases_those_types_and_keeps_the_rest(new_event, booked, cancel, status):
    event = new_event(6, ticketTypes=types(("adult", 6), ("child", 3)))
    booked(event, "family", items=FAMILY)

    response = cancel(event, "family", items=items(child=2))

    booking = response.get_json()["booking"]
    assert (booking["status"], booking["quantity"], booking["items"]) == (
        "confirmed",
        2,
        [{"ticketType": "adult", "quantity": 2}],
    )
    assert by_code(status(event))["child"]["availableTickets"] == 3


def test_a_waiting_entry_that_gives_up_a_type_keeps_its_place_in_the_others(new_event, booked, cancel):
    event = new_event(4, ticketTypes=types(("adult", 4), ("child", 4)))
    booked(event, "holder", items=items(adult=4))
    booked(event, "first", items=items(adult=1, child=1))
    booked(event, "second", items=items(adult=2))

    booking = cancel(event, "second", items=items(adult=1)).get_json()["booking"]

    assert (booking["waitingPosition"], booking["items"]) == (
        2,
        [{"ticketType": "adult", "quantity": 1, "ticketsAhead": 1}],
    )


def test_raising_a_type_promotes_the_entries_it_unblocks(new_event, booked, patch, booking_status, status):
    event = new_event(10, ticketTypes=types(("adult", 10), ("vip", 1)))
    booked(event, "v1", items=items(vip=1))
    booked(event, "v2", items=items(vip=1, adult=1))

    response = patch(event, ticketTypes=[{"code": "vip", "totalTickets": 2}])

    assert response.status_code == 200, response.get_json()
    promoted = response.get_json()["promotedBookings"]
    # Items are shown in the order of the event's types.
    assert [(b["userId"], b["items"]) for b in promoted] == [
        ("v2", [{"ticketType": "adult", "quantity": 1}, {"ticketType": "vip", "quantity": 1}])
    ]
    assert by_code(status(event))["vip"]["availableTickets"] == 0


def test_raising_the_event_promotes_by_the_walk_with_types(new_event, booked, patch, booking_status):
    event = new_event(2, ticketTypes=types(("adult", 2), ("child", 2)))
    booked(event, "a", items=items(adult=2))
    booked(event, "c", items=items(child=2))

    response = patch(event, totalTickets=4)

    assert [b["userId"] for b in response.get_json()["promotedBookings"]] == ["c"]


def test_adding_a_second_type_keeps_every_place_right(new_event, booked, cancel, patch, booking_status):
    event = new_event(2)
    booked(event, "holder", quantity=2)
    booked(event, "w1", quantity=2)
    booked(event, "w2", quantity=1)
    cancel(event, "w1", quantity=1)

    response = patch(event, ticketTypes=[{"code": "vip", "totalTickets": 2}])

    assert [t["code"] for t in response.get_json()["event"]["ticketTypes"]] == ["standard", "vip"]
    w2 = booking_status(event, "w2")
    assert (w2["waitingPosition"], w2["ticketsAhead"], w2["items"]) == (
        2,
        1,
        [{"ticketType": "standard", "quantity": 1, "ticketsAhead": 1}],
    )
    assert booked(event, "v", items=items(vip=1))["status"] == "waiting"  # the event is full
    cancel(event, "holder")
    assert statuses(booking_status, event, "w1", "w2", "v") == ["confirmed", "confirmed", "waiting"]


def test_a_held_booking_holds_all_its_items_and_its_expiry_passes_them_on(new_event, booked, engine, booking_status):
    event = new_event(4, ticketTypes=types(("adult", 4), ("child", 2)), holdTtlSeconds=60)
    held = booked(event, "family", items=FAMILY)
    booked(event, "next", items=items(child=2))
    with engine.begin() as conn:
        conn.execute(text("UPDATE bookings SET hold_expires_at = now() WHERE user_id = 'family'"))
        conn.execute(text("SELECT * FROM expire_holds(:event, 'test')"), {"event": event["id"]})

    assert (held["status"], held["items"]) == ("held", FAMILY)
    after = booking_status(event, "next")
    assert (after["status"], after["items"]) == ("held", items(child=2))


def test_an_offer_with_types_is_of_the_whole_booking(new_event, booked, cancel, client):
    event = new_event(4, ticketTypes=types(("adult", 4), ("child", 2)), promotion="offer")
    booked(event, "holder", items=items(child=2, adult=2))
    booked(event, "family", items=FAMILY)

    promoted = cancel(event, "holder").get_json()["promotedBookings"]

    assert [(b["status"], b["items"]) for b in promoted] == [("offered", FAMILY)]
    accepted = client.post("/api/accept", json={"eventId": event["id"], "userId": "family"}).get_json()["booking"]
    assert (accepted["status"], accepted["items"]) == ("confirmed", FAMILY)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"items": []}, "items"),
        ({"items": items(adult=0)}, "items"),
        ({"items": [*items(adult=1), *items(adult=1)]}, "items"),
        ({"items": items(adult=1), "quantity": 1}, "items"),
        ({"items": [{"ticketType": "Adult!", "quantity": 1}]}, "items"),
    ],
)
def test_malformed_items_are_refused_with_errors_items(new_event, book, body, field):
    event = new_event(4, ticketTypes=types(("adult", 4), ("child", 2)))

    assert field in assert_problem(book(event, "u", **body), 400, "invalid_request")["errors"]


@pytest.mark.parametrize(
    "body",
    [
        {"items": items(teen=1)},
        {"items": items(child=3)},  # above the type's maxPerBooking
        {"items": items(adult=3, child=2)},  # above the event's maxPerBooking
        {"quantity": 1},  # a bare quantity on an event of several types
    ],
)
def test_items_the_event_refuses_are_400_with_errors_items(new_event, book, body):
    event = new_event(6, maxPerBooking=4, ticketTypes=types(("adult", 6), ("child", 3, 2)))

    assert "items" in assert_problem(book(event, "u", **body), 400, "invalid_request")["errors"]


def test_cancelling_more_of_a_type_than_held_is_refused(new_event, booked, cancel):
    event = new_event(6, ticketTypes=types(("adult", 6), ("child", 3)))
    booked(event, "family", items=items(adult=2))

    response = cancel(event, "family", items=items(child=1))

    assert "items" in assert_problem(response, 400, "invalid_request")["errors"]


@pytest.mark.parametrize(
    "ticket_types",
    [
        types(("adult", 4), ("adult", 2)),
        types(("adult", 5), ("child", 6)),
        types(("general", 6)),  # a lone type above the event's total, as any type
        [{"code": "adult"}, *types(("child", 1))],
        [],
    ],
)
def test_invalid_ticket_types_on_initialize_are_400_with_errors_ticket_types(client, admin_headers, ticket_types):
    response = client.post(
        "/api/initialize", json={"totalTickets": 5, "ticketTypes": ticket_types}, headers=admin_headers
    )

    assert "ticketTypes" in assert_problem(response, 400, "invalid_request")["errors"]


def test_a_type_above_the_event_total_on_patch_is_400_and_below_its_bookings_409(new_event, booked, patch):
    event = new_event(5, ticketTypes=types(("adult", 5), ("child", 3)))
    booked(event, "kids", items=items(child=2))

    assert (
        "ticketTypes" in assert_problem(patch(event, ticketTypes=types(("child", 6))), 400, "invalid_request")["errors"]
    )
    assert_problem(patch(event, ticketTypes=types(("child", 1))), 409, "capacity_below_booked")
    assert patch(event, ticketTypes=types(("child", 2))).status_code == 200


def test_a_type_set_to_what_it_holds_stops_its_sales(new_event, booked, patch):
    event = new_event(5, ticketTypes=types(("adult", 5), ("child", 3)))
    booked(event, "kids", items=items(child=1))
    patch(event, ticketTypes=types(("child", 1)))

    assert booked(event, "late", items=items(child=1))["status"] == "waiting"
    assert booked(event, "grown", items=items(adult=1))["status"] == "confirmed"


def test_the_ledger_records_items_and_type_changes(new_event, booked, patch, engine):
    event = new_event(5, ticketTypes=types(("adult", 5), ("child", 3)))
    booked(event, "family", items=items(adult=1, child=1))
    patch(event, ticketTypes=[{"code": "vip", "totalTickets": 1}, {"code": "child", "totalTickets": 2}])
    ledger = text(
        "SELECT kind, item_types, item_quantities, ticket_type, total_tickets_from, total_tickets_to "
        "FROM booking_events WHERE event_id = :event AND kind IN ('booked', 'type_added', 'type_changed') ORDER BY seq"
    )
    with engine.connect() as conn:
        entries = [tuple(row) for row in conn.execute(ledger, {"event": event["id"]})]

    assert entries == [
        ("booked", ["adult", "child"], [1, 1], None, None, None),
        ("type_added", None, None, "vip", 0, 1),
        ("type_changed", None, None, "child", 3, 2),
    ]


def test_a_one_type_event_books_by_items_of_its_type(new_event, booked, cancel):
    event = new_event(5)
    booking = booked(event, "a", items=items(standard=3))

    assert (booking["status"], booking["quantity"], booking["items"]) == ("confirmed", 3, items(standard=3))
    assert cancel(event, "a", items=items(standard=1)).get_json()["booking"]["quantity"] == 2
