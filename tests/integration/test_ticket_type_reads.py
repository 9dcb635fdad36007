"""What reads bookings knows their items (issue 26): the organiser's lists and their CSV, the history, on
an event of several types (the README's family of four) and of one."""

from __future__ import annotations

import csv
import io

import pytest

from tests.helpers.ticket_types import book, family_of_four, give_up


@pytest.fixture
def family(engine) -> str:
    return family_of_four(engine)


def get(client, admin_headers, path: str, **headers):
    response = client.get(path, headers={**admin_headers, **headers})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def test_the_waiting_list_gives_each_item_the_tickets_of_its_type_ahead(client, admin_headers, family):
    entries = get(client, admin_headers, f"/api/events/{family}/waiting-list").get_json()["entries"]

    assert [(e["userId"], e["position"], e["ticketsAhead"], e["items"]) for e in entries] == [
        (
            "smiths-f4",
            1,
            0,
            [
                {"ticketType": "standard", "quantity": 2, "ticketsAhead": 0},
                {"ticketType": "child", "quantity": 2, "ticketsAhead": 0},
            ],
        ),
        ("bob-f4", 2, 4, [{"ticketType": "standard", "quantity": 1, "ticketsAhead": 2}]),
    ]


def test_a_waiting_list_page_after_the_first_counts_each_types_tickets_ahead_from_its_counters(
    client, admin_headers, family, engine
):
    book(engine, family, "kid", child=1)
    book(engine, family, "dad", standard=1, child=1)
    first = get(client, admin_headers, f"/api/events/{family}/waiting-list?limit=2").get_json()
    rest = get(client, admin_headers, f"/api/events/{family}/waiting-list?after={first['nextAfter']}").get_json()

    assert [(e["userId"], e["ticketsAhead"], e["items"]) for e in rest["entries"]] == [
        ("kid", 5, [{"ticketType": "child", "quantity": 1, "ticketsAhead": 2}]),
        (
            "dad",
            6,
            [
                {"ticketType": "standard", "quantity": 1, "ticketsAhead": 3},
                {"ticketType": "child", "quantity": 1, "ticketsAhead": 3},
            ],
        ),
    ]


def test_places_of_each_type_stay_right_after_an_entry_is_promoted_past_older_ones(
    client, admin_headers, family, engine
):
    assert book(engine, family, "valet", parking=1) == "waiting"  # 3 left: the event lacks room for the Smiths
    give_up(engine, family, "ann-f4", standard=1)  # 4 left, no child ticket: only the valet, on parking, goes ahead
    book(engine, family, "kid", child=1)
    book(engine, family, "late", parking=1)  # parking is full now
    entries = get(client, admin_headers, f"/api/events/{family}/waiting-list").get_json()["entries"]

    assert [
        (e["userId"], e["position"], [(i["ticketType"], i["ticketsAhead"]) for i in e["items"]]) for e in entries
    ] == [
        ("smiths-f4", 1, [("standard", 0), ("child", 0)]),
        ("bob-f4", 2, [("standard", 2)]),
        ("kid", 3, [("child", 2)]),
        ("late", 4, [("parking", 0)]),
    ]


def test_the_bookings_list_gives_each_booking_its_items(client, admin_headers, family):
    bookings = get(client, admin_headers, f"/api/events/{family}/bookings").get_json()["bookings"]

    assert {b["userId"]: [(i["ticketType"], i["quantity"]) for i in b["items"]] for b in bookings} == {
        "ann-f4": [("standard", 2), ("child", 2)],
        "smiths-f4": [("standard", 2), ("child", 2)],
        "bob-f4": [("standard", 1)],
        "dana-f4": [("parking", 1)],
    }
    assert all("ticketsAhead" not in item for b in bookings for item in b["items"])


@pytest.mark.parametrize("path", ["bookings", "waiting-list"])
def test_a_csv_export_is_one_row_per_booking_with_its_items_in_one_cell(client, admin_headers, family, path):
    text = get(client, admin_headers, f"/api/events/{family}/{path}", Accept="text/csv").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))

    assert {row["userId"]: row["items"] for row in rows if row["userId"] in ("smiths-f4", "bob-f4")} == {
        "smiths-f4": "standard:2;child:2",
        "bob-f4": "standard:1",
    }


def test_the_history_gives_each_bookings_change_its_items_and_each_type_change_its_code(
    client, admin_headers, family, engine
):
    give_up(engine, family, "ann-f4", child=2)
    entries = get(client, admin_headers, f"/api/events/{family}/history").get_json()["entries"]

    kinds = [(e["kind"], e.get("ticketType"), e.get("totalTicketsTo"), e.get("items")) for e in entries]
    assert kinds[:3] == [
        ("event_updated", None, None, None),
        ("type_added", "child", 2, None),
        ("type_added", "parking", 2, None),
    ]
    assert [(e["kind"], e["userId"], e["items"]) for e in entries[-3:]] == [
        ("reduced", "ann-f4", [{"ticketType": "child", "quantity": 2}]),
        ("promoted", "smiths-f4", [{"ticketType": "standard", "quantity": 2}, {"ticketType": "child", "quantity": 2}]),
        ("promoted", "bob-f4", [{"ticketType": "standard", "quantity": 1}]),
    ]


def test_on_an_event_of_one_type_every_read_shows_one_item_of_that_type(client, admin_headers, new_event):
    event = new_event(1)
    for user in ("a", "b"):
        client.post("/api/book", json={"eventId": event["id"], "userId": user})

    waiting = get(client, admin_headers, f"/api/events/{event['id']}/waiting-list").get_json()["entries"]
    bookings = get(client, admin_headers, f"/api/events/{event['id']}/bookings").get_json()["bookings"]
    history = get(client, admin_headers, f"/api/events/{event['id']}/history").get_json()["entries"]

    assert waiting[0]["items"] == [{"ticketType": "standard", "quantity": 1, "ticketsAhead": 0}]
    assert [b["items"] for b in bookings] == [[{"ticketType": "standard", "quantity": 1}]] * 2
    assert [e["items"] for e in history] == [[{"ticketType": "standard", "quantity": 1}]] * 2


def test_a_users_bookings_carry_their_items_and_while_waiting_each_items_place(client, family):
    bookings = client.get("/api/users/bob-f4/bookings").get_json()[
        "bookings"
    ]  # bob-f4 books at other tests' events too

    assert [(b["status"], b["ticketsAhead"], b["items"]) for b in bookings if b["eventId"] == family] == [
        ("waiting", 2, [{"ticketType": "standard", "quantity": 1, "ticketsAhead": 2}])
    ]
