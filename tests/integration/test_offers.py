"""Offers (issue 16): in offer mode a freed ticket is offered to the head of the queue for a limited
time; accepted, declined, cancelled or expired (by the database's clock, and by the sweeper)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from app.booking import sweeps
from app.booking.domain import MAX_OFFER_TTL_SECONDS
from app.booking.offers import sweep_expired_offers
from app.operations import audit
from tests.helpers.api import assert_problem, booking_now, event_now
from tests.helpers.database import ledger_kinds
from tests.helpers.waiting import wait_until

OFFER_DUE = text("""
SELECT clock_timestamp() >= b.offer_expires_at FROM bookings b
 WHERE b.event_id = :event_id AND b.user_id = :user_id AND b.status = 'offered'
""")
# Far more overdue than any offer another test leaves due, so that these go first in a pass.
OVERDUE_BY = text("""
UPDATE bookings SET offer_expires_at = clock_timestamp() - make_interval(hours => 1000 + :hours)
 WHERE event_id = :event_id AND status = 'offered'
""")
LOCK_EVENT = text("SELECT 1 FROM events WHERE id = :event_id FOR UPDATE")
SWEEPERS_WAITING = text("""
SELECT count(*) FROM pg_stat_activity
 WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%expire_offers(%'
""")


@pytest.fixture
def post(client):
    def post_json(path: str, event: dict, user: str, **body):
        return client.post(path, json={"eventId": event["id"], "userId": user, **body})

    return post_json


@pytest.fixture
def sold_out_with_a_waiter(new_event, post):
    """An event of one ticket in offer mode, held by `holder`, with `waiter` in the queue."""

    def open_event(ttl_seconds: int = 3600, total: int = 1) -> dict:
        event = new_event(total, promotion="offer", offerTtlSeconds=ttl_seconds)
        for user in ("holder", "waiter"):
            assert post("/api/book", event, user, quantity=total if user == "holder" else 1).status_code == 201
        return event

    return open_event


@pytest.fixture
def due_offer(engine, sold_out_with_a_waiter, post):
    """An event whose `waiter` holds an offer past its time (of 1 s) that no sweeper has expired yet,
    with the users `behind` waiting after it."""

    def make(*behind: str) -> dict:
        event = sold_out_with_a_waiter(ttl_seconds=1)
        for user in behind:
            post("/api/book", event, user)
        post("/api/cancel", event, "holder")
        wait_until_due(engine, event, "waiter")
        return event

    return make


def sweepers_waiting(engine) -> int:
    # A connection per look: within one transaction pg_stat_activity keeps showing its first snapshot.
    with engine.connect() as conn:
        return conn.execute(SWEEPERS_WAITING).scalar_one()


def make_overdue(engine, event: dict, hours: int) -> None:
    with engine.begin() as conn:
        conn.execute(OVERDUE_BY, {"event_id": event["id"], "hours": hours})


def wait_until_due(engine, event: dict, user: str) -> None:
    def due() -> bool:
        with engine.connect() as conn:
            return conn.execute(OFFER_DUE, {"event_id": event["id"], "user_id": user}).scalar_one()

    wait_until(due, f"{user}'s offer is past its time by the database's clock")


def test_an_event_opens_in_auto_mode_with_a_day_to_accept_unless_it_says_otherwise(new_event):
    assert (new_event(1)["promotion"], new_event(1)["offerTtlSeconds"]) == ("auto", 86_400)
    assert (new_event(1, promotion="offer", offerTtlSeconds=5)["promotion"],) == ("offer",)


def test_a_cancel_in_offer_mode_offers_the_ticket_to_the_head_and_holds_it(client, sold_out_with_a_waiter, post):
    event = sold_out_with_a_waiter()
    cancellation = post("/api/cancel", event, "holder").get_json()

    offered = cancellation["promotedBookings"][0]
    assert (offered["userId"], offered["status"]) == ("waiter", "offered") and offered["offerExpiresAt"]
    assert booking_now(client, event, "waiter")["status"] == "offered"
    assert (event_now(client, event)["availableTickets"], event_now(client, event)["waitingListCount"]) == (0, 0)


def test_an_accepted_offer_is_confirmed_and_the_ledger_says_offered_then_accepted(
    client, engine, sold_out_with_a_waiter, post
):
    event = sold_out_with_a_waiter()
    post("/api/cancel", event, "holder")
    response = post("/api/accept", event, "waiter")

    assert response.status_code == 200
    assert response.get_json()["booking"]["status"] == "confirmed"
    assert ledger_kinds(engine, event["id"])[-2:] == ["offered", "accepted"]
    assert audit.check(engine).ok


def test_accepting_without_an_offer_is_409_no_offer(sold_out_with_a_waiter, post):
    event = sold_out_with_a_waiter()
    assert_problem(post("/api/accept", event, "waiter"), 409, "no_offer")
    assert_problem(post("/api/decline", event, "holder"), 409, "no_offer")


def test_an_accept_after_the_deadline_is_offer_expired_though_no_sweeper_ran(client, due_offer, post):
    event = due_offer()

    assert_problem(post("/api/accept", event, "waiter"), 409, "offer_expired")
    assert_problem(post("/api/decline", event, "waiter"), 409, "offer_expired")
    assert booking_now(client, event, "waiter")["status"] == "offered"  # a refusal changes nothing


def test_a_declined_offer_is_cancelled_and_the_ticket_offered_to_the_next(client, engine, sold_out_with_a_waiter, post):
    event = sold_out_with_a_waiter()
    post("/api/book", event, "next")
    post("/api/cancel", event, "holder")
    declined = post("/api/decline", event, "waiter").get_json()

    assert (declined["booking"]["status"], declined["booking"]["cancelReason"]) == ("cancelled", "declined")
    assert [(b["userId"], b["status"]) for b in declined["promotedBookings"]] == [("next", "offered")]
    assert ledger_kinds(engine, event["id"])[-2:] == ["declined", "offered"]
    assert audit.check(engine).ok


def test_cancelling_an_offer_declines_it(sold_out_with_a_waiter, post):
    event = sold_out_with_a_waiter()
    post("/api/cancel", event, "holder")
    booking = post("/api/cancel", event, "waiter").get_json()["booking"]

    assert booking["cancelReason"] == "declined"


def test_the_sweeper_expires_a_due_offer_once_and_offers_the_ticket_to_the_next(client, engine, due_offer):
    event = due_offer("next")

    swept = sweep_expired_offers(engine)  # every event's due offers: other tests' too
    after_one_sweep = ledger_kinds(engine, event["id"])
    sweep_expired_offers(engine)

    assert swept.expired >= 1 and after_one_sweep[-2:] == ["expired", "offered"]
    assert ledger_kinds(engine, event["id"]) == after_one_sweep  # idempotent: nothing left to expire
    assert booking_now(client, event, "waiter")["cancelReason"] == "expired"
    assert booking_now(client, event, "next")["status"] == "offered"
    assert audit.check(engine).ok


def test_an_accept_or_decline_after_the_sweep_is_still_offer_expired_until_the_user_books_again(
    engine, due_offer, post
):
    event = due_offer()
    sweep_expired_offers(engine)

    assert_problem(post("/api/accept", event, "waiter"), 409, "offer_expired")
    assert_problem(post("/api/decline", event, "waiter"), 409, "offer_expired")
    assert post("/api/book", event, "waiter").get_json()["booking"]["status"] == "confirmed"
    assert_problem(post("/api/accept", event, "waiter"), 409, "no_offer")


def test_the_sweeper_waits_for_a_writer_holding_the_event_and_expires_the_offer_once_it_commits(
    client, engine, due_offer
):
    event = due_offer("next")
    with engine.connect() as writer, ThreadPoolExecutor(1) as pool:
        writer.execute(LOCK_EVENT, {"event_id": event["id"]})  # as a hot event's bookings hold it
        sweep = pool.submit(sweep_expired_offers, engine)
        wait_until(lambda: sweep.done() or sweepers_waiting(engine) == 1, "the sweeper waits its turn")
        writer.commit()
        swept = sweep.result()

    assert ledger_kinds(engine, event["id"])[-2:] == ["expired", "offered"], swept
    assert booking_now(client, event, "next")["status"] == "offered"


def test_two_sweepers_waiting_for_the_same_event_expire_its_offer_once(client, engine, due_offer):
    event = due_offer("next")
    with engine.connect() as writer, ThreadPoolExecutor(2) as pool:
        writer.execute(LOCK_EVENT, {"event_id": event["id"]})
        sweeps = [pool.submit(sweep_expired_offers, engine) for _ in range(2)]  # as two dispatchers would
        wait_until(
            lambda: all(sweep.done() for sweep in sweeps) or sweepers_waiting(engine) == 2,
            "both sweepers wait their turn",
        )
        writer.commit()
        for sweep in sweeps:
            sweep.result()

    assert ledger_kinds(engine, event["id"])[-2:] == ["expired", "offered"]
    assert ledger_kinds(engine, event["id"]).count("expired") == 1
    assert booking_now(client, event, "next")["status"] == "offered"


def test_an_event_held_past_the_sweepers_lock_timeout_is_busy_and_swept_at_the_next_pass(client, engine, due_offer):
    event = due_offer()
    with engine.connect() as writer:
        writer.execute(LOCK_EVENT, {"event_id": event["id"]})  # as a call-off of a large event would, for long
        held = sweep_expired_offers(engine)
        assert booking_now(client, event, "waiter")["status"] == "offered"
    swept = sweep_expired_offers(engine)

    assert held.busy_events >= 1 and swept.expired >= 1
    assert booking_now(client, event, "waiter")["cancelReason"] == "expired"


def test_a_pass_sweeps_the_longest_overdue_events_first_and_says_a_backlog_is_left(
    client, engine, due_offer, monkeypatch
):
    monkeypatch.setattr(sweeps, "EVENTS_PER_PASS", 2)
    events = [due_offer() for _ in range(3)]
    for event, hours in zip(events, (1, 3, 2), strict=True):
        make_overdue(engine, event, hours)

    swept = sweep_expired_offers(engine)

    assert swept.backlog and swept.expired == 2
    assert [booking_now(client, event, "waiter")["status"] for event in events] == ["offered", "cancelled", "cancelled"]


def test_a_sweep_waiting_for_one_events_lock_expires_the_other_events_offers_meanwhile(client, engine, due_offer):
    held, free = due_offer(), due_offer()
    make_overdue(engine, held, 2)  # the first in the pass
    make_overdue(engine, free, 1)
    with engine.connect() as writer, ThreadPoolExecutor(1) as pool:
        writer.execute(LOCK_EVENT, {"event_id": held["id"]})
        sweep = pool.submit(sweep_expired_offers, engine)
        wait_until(
            lambda: sweepers_waiting(engine) == 1 and booking_now(client, free, "waiter")["status"] == "cancelled",
            "the free event is swept while the sweeper waits for the held one",
        )
        writer.commit()
        sweep.result()

    assert booking_now(client, held, "waiter")["cancelReason"] == "expired"


def test_a_capacity_raise_in_offer_mode_makes_several_offers(new_event, post, patch_event):
    event = new_event(1)
    for user in ("holder", "first", "second", "third"):
        post("/api/book", event, user)
    update = patch_event(event, totalTickets=3, promotion="offer", offerTtlSeconds=60).get_json()

    assert [(b["userId"], b["status"]) for b in update["promotedBookings"]] == [
        ("first", "offered"),
        ("second", "offered"),
    ]
    assert (update["event"]["availableTickets"], update["event"]["promotion"]) == (0, "offer")


def test_offers_made_before_a_switch_to_auto_stay_until_accepted_and_then_tickets_are_confirmed(
    client, engine, sold_out_with_a_waiter, post, patch_event
):
    event = sold_out_with_a_waiter(total=1)
    post("/api/book", event, "next")
    post("/api/cancel", event, "holder")
    patch_event(event, promotion="auto")

    assert booking_now(client, event, "waiter")["status"] == "offered"
    assert post("/api/accept", event, "waiter").status_code == 200
    assert post("/api/cancel", event, "waiter").get_json()["promotedBookings"][0]["status"] == "confirmed"
    assert audit.check(engine).ok


@pytest.mark.parametrize(
    "body", [{"promotion": "later"}, {"offerTtlSeconds": 0}, {"offerTtlSeconds": MAX_OFFER_TTL_SECONDS + 1}]
)
def test_initialize_refuses_an_unknown_promotion_or_a_ttl_out_of_range(client, admin_headers, body):
    response = client.post("/api/initialize", json={"totalTickets": 1, **body}, headers=admin_headers)
    assert_problem(response, 400, "invalid_request")


@pytest.fixture
def patch_event(client, admin_headers):
    def patch(event: dict, **body):
        return client.patch(f"/api/events/{event['id']}", json=body, headers=admin_headers)

    return patch
