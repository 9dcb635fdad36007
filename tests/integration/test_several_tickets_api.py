"""Several tickets per booking over HTTP (contract, "Several tickets per booking"): the new fields, the
400s with `errors.quantity`, partial cancels, and the strict first-come-first-served rule."""

from __future__ import annotations

import pytest

from app.booking.domain import MAX_PER_BOOKING
from app.database.tables import bookings
from tests.helpers.api import assert_problem
from tests.helpers.database import count_rows


def booking_status(client, event: dict, user: str) -> dict:
    return client.get(f"/api/booking-status/{event['id']}/{user}").get_json()["booking"]


def test_an_event_opens_with_max_per_booking_ten_unless_told_and_no_waiting_tickets(new_event):
    assert (new_event(5)["maxPerBooking"], new_event(5)["waitingTickets"]) == (10, 0)
    assert new_event(5, maxPerBooking=3)["maxPerBooking"] == 3


@pytest.mark.parametrize("limit", [0, MAX_PER_BOOKING + 1, "4", True])
def test_max_per_booking_outside_1_to_100_is_refused_with_its_field_named(client, admin_headers, limit):
    response = client.post("/api/initialize", json={"totalTickets": 5, "maxPerBooking": limit}, headers=admin_headers)
    assert "maxPerBooking" in assert_problem(response, 400, "invalid_request")["errors"]


def test_a_booking_without_quantity_holds_one_ticket_and_has_no_tickets_ahead(new_event, book, status):
    event = new_event(5)
    booking = book(event, "solo").get_json()["booking"]
    assert (booking["status"], booking["quantity"], booking["ticketsAhead"]) == ("confirmed", 1, None)
    assert status(event)["availableTickets"] == 4


def test_a_booking_takes_all_its_tickets_at_once(new_event, book, status):
    event = new_event(5)
    response = book(event, "group", quantity=4)
    assert response.status_code == 201
    assert (response.get_json()["booking"]["status"], response.get_json()["booking"]["quantity"]) == ("confirmed", 4)
    assert (status(event)["availableTickets"], status(event)["bookedTickets"]) == (1, 4)


def test_a_quantity_over_max_per_booking_is_400_with_errors_quantity_and_changes_nothing(
    engine, new_event, book, status
):
    event = new_event(20, maxPerBooking=3)
    body = assert_problem(book(event, "greedy", quantity=4), 400, "invalid_request")
    assert list(body["errors"]) == ["quantity"] and body["errors"]["quantity"] == [body["detail"]]
    assert status(event)["availableTickets"] == 20
    assert count_rows(engine, bookings, event_id=event["id"]) == 0


def test_a_quantity_over_total_tickets_is_400_since_it_could_never_be_confirmed(engine, new_event, book):
    event = new_event(3)  # maxPerBooking 10
    body = assert_problem(book(event, "too-many", quantity=4), 400, "invalid_request")
    assert "totalTickets" in body["errors"]["quantity"][0]
    assert count_rows(engine, bookings, event_id=event["id"]) == 0


@pytest.mark.parametrize("quantity", [0, -1, MAX_PER_BOOKING + 1, 2.5, "2", None])
def test_a_book_quantity_that_is_no_number_of_tickets_is_refused_by_the_schema(new_event, book, quantity):
    body = assert_problem(book(new_event(5), "odd", quantity=quantity), 400, "invalid_request")
    assert body["detail"] == "the request is not valid; see errors" and "quantity" in body["errors"]


def test_a_waiting_booking_tells_the_tickets_ahead_of_it_everywhere_it_is_read(client, new_event, book, status):
    event = new_event(2)
    book(event, "holder", quantity=2)
    book(event, "first-waiter", quantity=2)
    waiting = book(event, "second-waiter", quantity=1).get_json()["booking"]
    assert (waiting["status"], waiting["waitingPosition"], waiting["ticketsAhead"]) == ("waiting", 2, 2)
    assert booking_status(client, event, "second-waiter")["ticketsAhead"] == 2
    listed = client.get("/api/users/second-waiter/bookings").get_json()["bookings"]
    assert [(b["quantity"], b["ticketsAhead"]) for b in listed if b["eventId"] == event["id"]] == [(1, 2)]
    assert (status(event)["waitingListCount"], status(event)["waitingTickets"]) == (2, 3)


def test_a_partial_cancel_of_a_confirmed_booking_releases_that_many_tickets(new_event, book, cancel, status):
    event = new_event(5)
    book(event, "group", quantity=4)
    body = cancel(event, "group", quantity=3).get_json()
    assert (body["booking"]["status"], body["booking"]["quantity"]) == ("confirmed", 1)
    assert (body["promoted"], body["promotedBookings"]) == (None, [])
    assert status(event)["availableTickets"] == 4


def test_a_waiting_entry_that_shrinks_keeps_its_place_and_the_tickets_behind_move_up(
    client, new_event, book, cancel, status
):
    event = new_event(3, maxPerBooking=3)
    book(event, "holder", quantity=3)
    book(event, "ahead", quantity=1)
    book(event, "shrinking", quantity=3)
    book(event, "behind", quantity=2)
    body = cancel(event, "shrinking", quantity=2).get_json()
    assert (body["booking"]["status"], body["booking"]["quantity"]) == ("waiting", 1)
    assert (body["booking"]["waitingPosition"], body["booking"]["ticketsAhead"]) == (2, 1)
    assert (
        booking_status(client, event, "behind")["waitingPosition"],
        booking_status(client, event, "behind")["ticketsAhead"],
    ) == (3, 2)
    assert (status(event)["waitingListCount"], status(event)["waitingTickets"]) == (3, 4)


def test_a_partial_cancel_of_more_than_held_is_400_with_errors_quantity_and_changes_nothing(
    client, new_event, book, cancel, status
):
    event = new_event(5)
    book(event, "pair", quantity=2)
    body = assert_problem(cancel(event, "pair", quantity=3), 400, "invalid_request")
    assert list(body["errors"]) == ["quantity"]
    assert booking_status(client, event, "pair")["quantity"] == 2
    assert status(event)["availableTickets"] == 3


@pytest.mark.parametrize("quantity", [0, -2, "1", None])
def test_a_cancel_quantity_below_one_is_refused_by_the_schema_before_the_database(
    client, new_event, book, cancel, quantity
):
    event = new_event(5)
    book(event, "pair", quantity=2)
    assert "quantity" in assert_problem(cancel(event, "pair", quantity=quantity), 400, "invalid_request")["errors"]
    assert booking_status(client, event, "pair")["status"] == "confirmed"


def test_a_cancel_of_all_the_tickets_held_cancels_the_whole_booking(new_event, book, cancel):
    event = new_event(5)
    book(event, "pair", quantity=2)
    body = cancel(event, "pair", quantity=2).get_json()
    assert (body["booking"]["status"], body["booking"]["quantity"]) == ("cancelled", 2)


def test_a_head_that_leaves_promotes_the_entries_behind_it_in_the_same_transaction(
    client, admin_headers, new_event, book, cancel, status
):
    event = new_event(4, maxPerBooking=4)
    book(event, "holder", quantity=2)
    book(event, "head", quantity=4)  # 4 > 2 available: waits, and so does everyone behind it
    book(event, "second", quantity=1)
    book(event, "third", quantity=1)
    response = cancel(event, "head")
    body = response.get_json()
    assert [(b["userId"], b["status"], b["quantity"]) for b in body["promotedBookings"]] == [
        ("second", "confirmed", 1),
        ("third", "confirmed", 1),
    ]
    assert body["promoted"] == body["promotedBookings"][0]
    assert (status(event)["availableTickets"], status(event)["waitingTickets"]) == (0, 0)
    ledger = client.get(f"/api/events/{event['id']}/history", headers=admin_headers).get_json()["entries"]
    assert [(e["kind"], e["userId"], e["quantity"]) for e in ledger[-3:]] == [
        ("cancelled", "head", 4),
        ("promoted", "second", 1),
        ("promoted", "third", 1),
    ]
    assert {e["requestId"] for e in ledger[-3:]} == {response.headers["X-Request-ID"]}


def test_the_fifo_walk_nobody_overtakes_the_head_not_even_a_smaller_booking(new_event, book, cancel, status):
    event = new_event(5, maxPerBooking=4)
    assert book(event, "a", quantity=3).get_json()["booking"]["status"] == "confirmed"  # 2 left
    b = book(event, "b", quantity=4).get_json()["booking"]  # 4 > 2: waits
    c = book(event, "c", quantity=1).get_json()["booking"]  # 1 would fit, but b is ahead
    assert [(x["status"], x["waitingPosition"], x["ticketsAhead"]) for x in (b, c)] == [
        ("waiting", 1, 0),
        ("waiting", 2, 4),
    ]
    freed_one = cancel(event, "a", quantity=1).get_json()  # 3 available: still not enough for b
    assert freed_one["promotedBookings"] == [] and status(event)["availableTickets"] == 3
    freed_all = cancel(event, "a").get_json()  # 5 available: b (4), then c (1)
    assert [x["userId"] for x in freed_all["promotedBookings"]] == ["b", "c"]
    assert (status(event)["availableTickets"], status(event)["waitingListCount"]) == (0, 0)


def test_the_history_records_a_partial_cancel_as_reduced_with_the_tickets_released(
    client, admin_headers, new_event, book, cancel
):
    event = new_event(5)
    book(event, "group", quantity=4)
    cancel(event, "group", quantity=3)
    ledger = client.get(f"/api/events/{event['id']}/history", headers=admin_headers).get_json()["entries"]
    assert [(e["kind"], e["quantity"]) for e in ledger] == [("booked", 4), ("reduced", 3)]


V1_BOOKING = ["id", "eventId", "userId", "status", "waitingPosition", "createdAt", "updatedAt"]
V1_EVENT = [
    "id",
    "name",
    "totalTickets",
    "availableTickets",
    "bookedTickets",
    "waitingListCount",
    "createdAt",
    "updatedAt",
]


def test_a_v1_body_keeps_its_fields_in_order_and_grows_only_at_its_end(new_event, book, cancel):
    event = new_event(1)
    book(event, "holder")
    booking = book(event, "waiter").get_json()["booking"]
    cancellation = cancel(event, "holder").get_json()
    # status, salesOpen: issue 14; promotion, offerTtlSeconds, offerExpiresAt, cancelReason: issue 16;
    # holdTtlSeconds, heldTickets, holdExpiresAt, paymentReference: issue 25; ticketTypes, items: issue 26;
    # salesOpenAt, lobbyCount, drawnAt, lobbyRank: issue 27
    assert list(event) == V1_EVENT + [
        "maxPerBooking",
        "waitingTickets",
        "status",
        "salesOpen",
        "promotion",
        "offerTtlSeconds",
        "holdTtlSeconds",
        "heldTickets",
        "ticketTypes",
        "salesOpenAt",
        "lobbyCount",
        "drawnAt",
    ]
    later_booking_fields = [
        "quantity",
        "ticketsAhead",
        "offerExpiresAt",
        "cancelReason",
        "holdExpiresAt",
        "paymentReference",
        "items",
        "lobbyRank",
    ]
    assert list(booking) == V1_BOOKING + later_booking_fields
    assert list(cancellation) == ["booking", "promoted", "promotedBookings"]
    assert list(cancellation["promoted"]) == V1_BOOKING + later_booking_fields


def test_a_quantity_refusal_with_an_idempotency_key_is_stored_and_replayed_with_its_errors(client, new_event):
    event = new_event(3)
    request = {
        "json": {"eventId": event["id"], "userId": "keyed", "quantity": 4},
        "headers": {"Idempotency-Key": "q-1"},
    }
    first, replay = client.post("/api/book", **request), client.post("/api/book", **request)
    assert first.status_code == replay.status_code == 400
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.get_data() == first.get_data()
    assert "quantity" in first.get_json()["errors"]
