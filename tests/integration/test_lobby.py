"""A fair sale opening (issue 27): with `salesOpenAt`, a booking before the draw is a `lobby` entry; the
draw ranks the lobby at random and books it in rank order by the ordinary rules; late arrivals are ranked
after every drawn entry; `salesOpenAt` moves until the draw starts."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app.booking.lobby import draw_due_lobbies
from tests.helpers.api import assert_problem, booking_now, event_now
from tests.helpers.database import ledger_kinds, problems_after
from tests.helpers.lobby import draw, drawn, later, open_now


@pytest.fixture
def post(client):
    def post_json(path: str, event: dict, user: str, **body):
        return client.post(path, json={"eventId": event["id"], "userId": user, **body})

    return post_json


@pytest.fixture
def lobby_event(new_event, post):
    """An event of `total` tickets opening in an hour, with `users` in its lobby (one ticket each)."""

    def open_event(*users: str, total: int = 10, **fields) -> dict:
        event = new_event(total, salesOpenAt=later(), **fields)
        for user in users:
            assert post("/api/book", event, user).status_code == 201
        return event

    return open_event


def test_an_event_has_no_lobby_unless_it_says_when_its_sale_opens(new_event):
    event = new_event(5)

    assert (event["salesOpenAt"], event["lobbyCount"], event["drawnAt"]) == (None, 0, None)


def test_a_booking_before_the_opening_is_a_lobby_entry_with_no_ticket_and_no_place(lobby_event, post, client):
    event = lobby_event(total=5)

    booking = post("/api/book", event, "ann", quantity=2).get_json()["booking"]

    assert (booking["status"], booking["quantity"], booking["waitingPosition"], booking["lobbyRank"]) == (
        "lobby",
        2,
        None,
        None,
    )
    assert (event_now(client, event)["availableTickets"], event_now(client, event)["lobbyCount"]) == (5, 1)


def test_a_user_holds_one_lobby_entry(lobby_event, post):
    event = lobby_event("ann")

    assert_problem(post("/api/book", event, "ann"), 409, "already_booked")


def test_a_lobby_entry_cancelled_leaves_the_lobby_and_nothing_else_changes(lobby_event, post, client):
    event = lobby_event("ann", "bob")

    reply = post("/api/cancel", event, "ann").get_json()

    assert (reply["booking"]["status"], reply["promotedBookings"]) == ("cancelled", [])
    now = event_now(client, event)
    assert (now["lobbyCount"], now["availableTickets"], now["waitingListCount"]) == (1, 10, 0)


def test_a_lobby_entry_may_be_cancelled_and_booked_again_with_another_quantity(lobby_event, post):
    event = lobby_event("ann")
    post("/api/cancel", event, "ann")

    booking = post("/api/book", event, "ann", quantity=3).get_json()["booking"]

    assert (booking["status"], booking["quantity"]) == ("lobby", 3)


def test_the_draw_books_every_entry_in_rank_order_by_the_ordinary_rules(lobby_event, engine, client):
    users = [f"user-{n}" for n in range(8)]
    event = lobby_event(*users, total=5)
    open_now(engine, event["id"])

    done = draw(engine, event["id"])

    order = drawn(engine, event["id"])
    assert (done.ranked, done.seated, done.finished) == (8, 8, 1)
    assert sorted(user for user, _, _ in order) == sorted(users)
    assert [rank for _, _, rank in order] == list(range(1, 9))
    assert [status for _, status, _ in order] == ["confirmed"] * 5 + ["waiting"] * 3
    now = event_now(client, event)
    assert (now["availableTickets"], now["waitingListCount"], now["lobbyCount"]) == (0, 3, 0)
    assert now["drawnAt"] is not None


def test_a_drawn_booking_shows_its_rank_and_the_waiting_ones_their_place(lobby_event, engine, client):
    event = lobby_event("ann", "bob", total=1)
    open_now(engine, event["id"])
    draw(engine, event["id"])

    first, second = (booking_now(client, event, user) for user, _, _ in drawn(engine, event["id"]))

    assert (first["status"], first["lobbyRank"]) == ("confirmed", 1)
    assert (second["status"], second["lobbyRank"], second["waitingPosition"]) == ("waiting", 2, 1)


def test_with_holds_on_the_draw_holds_the_tickets_of_those_it_books(lobby_event, engine):
    event = lobby_event("ann", "bob", total=1, holdTtlSeconds=900)
    open_now(engine, event["id"])
    draw(engine, event["id"])

    assert [status for _, status, _ in drawn(engine, event["id"])] == ["held", "waiting"]


def test_after_the_draw_a_booking_is_as_without_a_lobby(lobby_event, engine, post):
    event = lobby_event("ann", total=2)
    open_now(engine, event["id"])
    draw(engine, event["id"])

    booking = post("/api/book", event, "bob").get_json()["booking"]

    assert (booking["status"], booking["lobbyRank"]) == ("confirmed", None)


def test_an_arrival_after_the_opening_before_the_draw_is_ranked_after_every_drawn_entry(lobby_event, engine, post):
    event = lobby_event("ann", "bob", "cy")
    open_now(engine, event["id"])
    assert post("/api/book", event, "late-1").get_json()["booking"]["status"] == "lobby"
    post("/api/book", event, "late-2")

    draw(engine, event["id"])

    order = [user for user, _, _ in drawn(engine, event["id"])]
    assert sorted(order[:3]) == ["ann", "bob", "cy"] and order[3:] == ["late-1", "late-2"]


def test_an_arrival_during_the_draw_is_ranked_next_and_booked_before_it_ends(lobby_event, engine, post):
    event = lobby_event("ann", "bob")
    open_now(engine, event["id"])
    step = text("SELECT * FROM draw_lobby(:event_id, 'test', 1)")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        assert conn.execute(step, {"event_id": event["id"]}).one().ranked == 2
        conn.execute(step, {"event_id": event["id"]})  # one entry booked, one left
    post("/api/book", event, "late")

    draw(engine, event["id"])

    assert [(user, rank) for user, _, rank in drawn(engine, event["id"])][2:] == [("late", 3)]


def test_an_entry_cancelled_after_the_ranking_is_passed_over(lobby_event, engine, post, client):
    event = lobby_event("ann", "bob", "cy")
    open_now(engine, event["id"])
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("SELECT * FROM draw_lobby(:event_id, 'test', 1)"), {"event_id": event["id"]})
    post("/api/cancel", event, "bob")

    draw(engine, event["id"])

    assert sorted(user for user, _, _ in drawn(engine, event["id"])) == ["ann", "cy"]
    assert booking_now(client, event, "bob")["status"] == "cancelled"


def test_the_ledger_records_the_lobby_the_ranks_and_the_end_of_the_draw(lobby_event, engine, client, admin_headers):
    event = lobby_event("ann", total=1)
    open_now(engine, event["id"])
    draw(engine, event["id"])

    entries = client.get(f"/api/events/{event['id']}/history", headers=admin_headers).get_json()["entries"]

    assert ledger_kinds(engine, event["id"]) == ["lobby", "booked", "lobby_drawn"]
    assert entries[1]["lobbyRank"] == 1 and "lobbyRank" not in entries[0]


def test_the_opening_moves_until_the_draw_starts(lobby_event, client, admin_headers, engine):
    event = lobby_event("ann")
    moved = later(2)
    reply = client.patch(f"/api/events/{event['id']}", json={"salesOpenAt": moved}, headers=admin_headers)
    assert reply.status_code == 200 and reply.get_json()["event"]["salesOpenAt"] is not None
    open_now(engine, event["id"])
    draw(engine, event["id"])

    refused = client.patch(f"/api/events/{event['id']}", json={"salesOpenAt": later(3)}, headers=admin_headers)

    assert_problem(refused, 409, "draw_started")


def test_clearing_the_opening_of_an_empty_lobby_sells_as_without_one(lobby_event, client, admin_headers, post):
    event = lobby_event()

    reply = client.patch(f"/api/events/{event['id']}", json={"salesOpenAt": None}, headers=admin_headers)

    assert reply.get_json()["event"]["salesOpenAt"] is None
    assert post("/api/book", event, "ann").get_json()["booking"]["status"] == "confirmed"


def test_clearing_the_opening_of_a_lobby_with_entries_opens_it_now(lobby_event, client, admin_headers, engine):
    event = lobby_event("ann")

    reply = client.patch(f"/api/events/{event['id']}", json={"salesOpenAt": None}, headers=admin_headers)
    draw(engine, event["id"])

    assert reply.get_json()["event"]["salesOpenAt"] is not None
    assert [user for user, _, _ in drawn(engine, event["id"])] == ["ann"]


def test_a_total_below_a_lobby_entrys_quantity_is_refused(lobby_event, post, client, admin_headers):
    event = lobby_event(total=10)
    post("/api/book", event, "ann", quantity=5)

    reply = client.patch(f"/api/events/{event['id']}", json={"totalTickets": 4}, headers=admin_headers)

    assert_problem(reply, 409, "capacity_below_waiting")


def test_closed_sales_pause_the_draw(lobby_event, engine, client, admin_headers):
    event = lobby_event("ann")
    client.patch(f"/api/events/{event['id']}", json={"salesOpen": False}, headers=admin_headers)
    open_now(engine, event["id"])

    assert draw(engine, event["id"]).ranked == 0
    assert event_now(client, event)["lobbyCount"] == 1


def test_calling_the_event_off_cancels_the_lobby(lobby_event, client, admin_headers):
    event = lobby_event("ann", "bob")

    cancelled = client.post(f"/api/events/{event['id']}/cancel", headers=admin_headers).get_json()["event"]

    assert cancelled["lobbyCount"] == 0
    assert booking_now(client, event, "ann")["status"] == "cancelled"


def test_a_salesopenat_without_an_offset_is_refused(new_event, client, admin_headers):
    reply = client.post(
        "/api/initialize", json={"totalTickets": 5, "salesOpenAt": "2030-01-01T10:00:00"}, headers=admin_headers
    )

    assert_problem(reply, 400, "invalid_request")


def test_the_background_pass_draws_the_lobbies_that_are_due(lobby_event, engine):
    event = lobby_event("ann")
    open_now(engine, event["id"])

    draw_due_lobbies(engine)

    assert [user for user, _, _ in drawn(engine, event["id"])] == ["ann"]


def test_flask_check_passes_after_a_draw_with_cancels_and_late_arrivals(lobby_event, engine, post):
    event = lobby_event("ann", "bob", "cy", "dan", total=2)
    post("/api/cancel", event, "dan")
    open_now(engine, event["id"])
    post("/api/book", event, "late")
    draw(engine, event["id"])
    post("/api/cancel", event, "ann")

    assert problems_after(engine, event["id"], "SELECT 1") == []


@pytest.mark.parametrize(
    ("tampering", "found"),
    [
        ("UPDATE lobby_ranks SET rank = rank + 10 WHERE event_id = :event AND rank = 1", "ranks are not 1.."),
        (
            "UPDATE booking_events SET lobby_rank = 3 - lobby_rank WHERE event_id = :event AND lobby_rank IS NOT NULL",
            "not book its entries in rank order",
        ),
        ("UPDATE events SET lobby_count = 5 WHERE id = :event", "lobbyCount 5 but 0"),
        ("UPDATE bookings SET status = 'lobby', lobby_rank = NULL WHERE event_id = :event", "still in the lobby"),
    ],
)
def test_flask_check_finds_a_draw_that_broke_its_rules(lobby_event, engine, tampering, found):
    event = lobby_event("ann", "bob")
    open_now(engine, event["id"])
    draw(engine, event["id"])

    problems = problems_after(engine, event["id"], tampering)

    assert any(found in problem for problem in problems), problems


def test_a_drawn_booking_cancelled_keeps_its_rank_in_the_reply(lobby_event, engine, post):
    event = lobby_event("ann")
    open_now(engine, event["id"])
    draw(engine, event["id"])

    booking = post("/api/cancel", event, "ann").get_json()["booking"]

    assert (booking["status"], booking["lobbyRank"]) == ("cancelled", 1)


def test_entries_queued_at_once_past_powers_of_two_keep_every_place_after_a_departure(
    lobby_event, engine, post, client
):
    users = [f"user-{n:02}" for n in range(40)]
    event = lobby_event(*users, total=1)
    open_now(engine, event["id"])
    step = text("SELECT * FROM draw_lobby(:event_id, 'test', 4, 4)")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(step, {"event_id": event["id"]})  # the ranking
        assert conn.execute(step, {"event_id": event["id"]}).one().seated == 4  # one confirmed, three queued at once
    leaver = next(user for user, status, _ in drawn(engine, event["id"]) if status == "waiting")
    post("/api/cancel", event, leaver)

    draw(engine, event["id"])  # the other 36 queued at once: ordinals 4 to 39 pass 4, 8, 16 and 32

    queue = [user for user, status, _ in drawn(engine, event["id"]) if status == "waiting"]
    assert [booking_now(client, event, user)["waitingPosition"] for user in queue] == list(range(1, 39))
    assert problems_after(engine, event["id"], "SELECT 1") == []
