"""The booking rules, through the HTTP API on real PostgreSQL."""

import re

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def book(client, event, user_id):
    return client.post("/api/book", json={"eventId": event["id"], "userId": user_id})


def cancel(client, event, user_id):
    return client.post("/api/cancel", json={"eventId": event["id"], "userId": user_id})


def status_of(client, event):
    return client.get(f"/api/status/{event['id']}").get_json()["event"]


def booking_of(client, event, user_id):
    return client.get(f"/api/booking-status/{event['id']}/{user_id}")


def test_initialize_returns_the_new_event_with_all_tickets_available(client, admin_headers):
    response = client.post("/api/initialize", json={"totalTickets": 5, "name": "Spring concert"}, headers=admin_headers)
    event = response.get_json()["event"]
    assert response.status_code == 201
    assert response.headers["Location"] == f"/api/status/{event['id']}"
    assert {k: event[k] for k in ("name", "totalTickets", "availableTickets", "bookedTickets", "waitingListCount")} == {
        "name": "Spring concert",
        "totalTickets": 5,
        "availableTickets": 5,
        "bookedTickets": 0,
        "waitingListCount": 0,
    }
    assert RFC3339_UTC.match(event["createdAt"]) and RFC3339_UTC.match(event["updatedAt"])


def test_initialize_without_a_name_gives_a_null_name(new_event):
    assert new_event(1)["name"] is None


def test_location_of_a_new_event_serves_its_status(client, admin_headers):
    response = client.post("/api/initialize", json={"totalTickets": 1}, headers=admin_headers)
    assert client.get(response.headers["Location"]).get_json() == {"event": response.get_json()["event"]}


def test_booking_while_tickets_remain_is_confirmed(client, new_event):
    event = new_event(2)
    response = book(client, event, "user-123")
    booking = response.get_json()["booking"]
    assert response.status_code == 201
    assert booking["status"] == "confirmed" and booking["waitingPosition"] is None
    assert booking["eventId"] == event["id"] and booking["userId"] == "user-123"
    assert RFC3339_UTC.match(booking["createdAt"])


def test_booking_a_sold_out_event_joins_the_waiting_list_in_order(client, new_event):
    event = new_event(1)
    book(client, event, "first")
    positions = [book(client, event, user).get_json()["booking"]["waitingPosition"] for user in ("w1", "w2", "w3")]
    assert positions == [1, 2, 3]
    assert booking_of(client, event, "w2").get_json()["booking"]["status"] == "waiting"


def test_status_counts_confirmed_available_and_waiting(client, new_event):
    event = new_event(2)
    for user in ("a", "b", "c"):
        book(client, event, user)
    counts = status_of(client, event)
    assert (counts["availableTickets"], counts["bookedTickets"], counts["waitingListCount"]) == (0, 2, 1)


def test_booking_twice_is_a_conflict_and_changes_nothing(client, new_event):
    event = new_event(3)
    book(client, event, "twice")
    response = book(client, event, "twice")
    assert response.status_code == 409
    assert response.get_json()["code"] == "already_booked"
    assert status_of(client, event)["availableTickets"] == 2


def test_waiting_user_booking_again_is_a_conflict(client, new_event):
    event = new_event(1)
    book(client, event, "holder")
    book(client, event, "waiter")
    assert book(client, event, "waiter").get_json()["code"] == "already_booked"


def test_cancelling_a_confirmed_booking_promotes_the_oldest_waiting_entry(client, new_event):
    event = new_event(1)
    for user in ("holder", "oldest", "younger"):
        book(client, event, user)
    response = cancel(client, event, "holder")
    body = response.get_json()
    assert response.status_code == 200
    assert body["booking"]["status"] == "cancelled" and body["booking"]["userId"] == "holder"
    assert body["promoted"]["userId"] == "oldest" and body["promoted"]["status"] == "confirmed"
    assert booking_of(client, event, "younger").get_json()["booking"]["waitingPosition"] == 1
    assert status_of(client, event)["waitingListCount"] == 1


def test_cancelling_with_nobody_waiting_returns_the_ticket(client, new_event):
    event = new_event(2)
    book(client, event, "solo")
    body = cancel(client, event, "solo").get_json()
    assert body["promoted"] is None
    assert status_of(client, event)["availableTickets"] == 2


def test_cancelling_a_waiting_entry_leaves_the_queue_and_frees_no_ticket(client, new_event):
    event = new_event(1)
    for user in ("holder", "w1", "w2"):
        book(client, event, user)
    body = cancel(client, event, "w1").get_json()
    assert body["booking"]["status"] == "cancelled" and body["promoted"] is None
    assert booking_of(client, event, "w2").get_json()["booking"]["waitingPosition"] == 1
    counts = status_of(client, event)
    assert (counts["availableTickets"], counts["waitingListCount"]) == (0, 1)


def test_cancelling_twice_is_a_conflict(client, new_event):
    event = new_event(1)
    book(client, event, "u")
    cancel(client, event, "u")
    response = cancel(client, event, "u")
    assert response.status_code == 409 and response.get_json()["code"] == "already_cancelled"


def test_cancelling_without_a_booking_is_not_found(client, new_event):
    response = cancel(client, new_event(1), "stranger")
    assert response.status_code == 404 and response.get_json()["code"] == "booking_not_found"


def test_user_may_book_again_after_cancelling(client, new_event):
    event = new_event(1)
    book(client, event, "again")
    cancel(client, event, "again")
    response = book(client, event, "again")
    assert response.status_code == 201 and response.get_json()["booking"]["status"] == "confirmed"


def test_rebooking_after_cancelling_goes_to_the_back_of_the_queue(client, new_event):
    event = new_event(1)
    for user in ("holder", "w1", "w2"):
        book(client, event, user)
    cancel(client, event, "w1")
    assert book(client, event, "w1").get_json()["booking"]["waitingPosition"] == 2


def test_booking_status_prefers_the_active_booking_over_cancelled_ones(client, new_event):
    event = new_event(1)
    first_id = book(client, event, "u").get_json()["booking"]["id"]
    cancel(client, event, "u")
    second_id = book(client, event, "u").get_json()["booking"]["id"]
    booking = booking_of(client, event, "u").get_json()["booking"]
    assert booking["id"] == second_id != first_id and booking["status"] == "confirmed"


def test_booking_status_shows_the_latest_cancelled_booking(client, new_event):
    event = new_event(1)
    book(client, event, "u")
    cancel(client, event, "u")
    book(client, event, "u")
    last_id = cancel(client, event, "u").get_json()["booking"]["id"]
    booking = booking_of(client, event, "u").get_json()["booking"]
    assert booking["id"] == last_id and booking["status"] == "cancelled"


def test_booking_status_of_a_user_who_never_booked_is_not_found(client, new_event):
    response = booking_of(client, new_event(1), "nobody")
    assert response.status_code == 404 and response.get_json()["code"] == "booking_not_found"


def test_booking_status_of_an_unknown_event_is_event_not_found(client):
    response = client.get("/api/booking-status/00000000-0000-0000-0000-000000000000/u")
    assert response.status_code == 404 and response.get_json()["code"] == "event_not_found"


def test_user_ids_with_unicode_and_slashes_round_trip(client, new_event):
    event = new_event(1)
    user_id = "Zoë/北京 ✓"
    book(client, event, user_id)
    response = client.get(f"/api/booking-status/{event['id']}/Zo%C3%AB%2F%E5%8C%97%E4%BA%AC%20%E2%9C%93")
    assert response.status_code == 200 and response.get_json()["booking"]["userId"] == user_id


def test_events_are_independent(client, new_event):
    first, second = new_event(1), new_event(1)
    book(client, first, "same-user")
    assert book(client, second, "same-user").get_json()["booking"]["status"] == "confirmed"
