"""Checkout holds (issue 25): with `holdTtlSeconds`, a booking that gets tickets is `held` for its payment
until `holdExpiresAt`; `POST /api/confirm` makes it `confirmed`, the sweeper expires it (`hold_expired`)
and passes its tickets on by the FIFO rule, the next in line held in turn."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from app.booking.holds import sweep_expired_holds
from app.booking.offers import sweep_expired_offers
from app.operations import audit
from tests.helpers.api import NIL_UUID, assert_problem, booking_now, event_now
from tests.helpers.database import ledger_kinds
from tests.helpers.identity import bearer

TTL = 900
# A hold's time run out: its deadline moved into the past by the database's clock (the clock cannot move).
# Far more overdue than any hold another test leaves due, so that these go first in a sweep's pass.
HOLDS_RUN_OUT = text("""
UPDATE bookings SET hold_expires_at = clock_timestamp() - interval '1000 hours'
 WHERE event_id = :event_id AND status = 'held'
""")
OFFERS_RUN_OUT = text("""
UPDATE bookings SET offer_expires_at = clock_timestamp() - interval '1000 hours'
 WHERE event_id = :event_id AND status = 'offered'
""")


@pytest.fixture
def post(client):
    def post_json(path: str, event: dict, user: str, headers: dict | None = None, **body):
        return client.post(path, json={"eventId": event["id"], "userId": user, **body}, headers=headers or {})

    return post_json


@pytest.fixture
def held_event(new_event, post):
    """An event of `total` tickets with holds on, `holder` holding all of them, `waiters` queued behind."""

    def open_event(*waiters: str, total: int = 1, **fields) -> dict:
        event = new_event(total, holdTtlSeconds=TTL, **fields)
        for user, quantity in [("holder", total)] + [(waiter, 1) for waiter in waiters]:
            assert post("/api/book", event, user, quantity=quantity).status_code == 201
        return event

    return open_event


@pytest.fixture
def run_out(engine):
    """The event's holds (or offers) past their time, by the database's clock; no sweeper has come yet."""

    def make_due(event: dict, statement=HOLDS_RUN_OUT) -> None:
        with engine.begin() as conn:
            conn.execute(statement, {"event_id": event["id"]})

    return make_due


def stamp(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_an_event_opens_without_holds_unless_it_says_a_ttl(new_event):
    plain, holding = new_event(1), new_event(1, holdTtlSeconds=TTL)

    assert (plain["holdTtlSeconds"], plain["heldTickets"]) == (None, 0)
    assert (holding["holdTtlSeconds"], holding["heldTickets"]) == (TTL, 0)


def test_without_holds_a_booking_is_confirmed_at_once_as_in_v2(new_event, post):
    booking = post("/api/book", new_event(1), "a").get_json()["booking"]

    assert (booking["status"], booking["holdExpiresAt"], booking["paymentReference"]) == ("confirmed", None, None)


def test_a_booking_with_holds_on_is_held_until_the_ttl_and_its_tickets_are_taken(client, new_event, post):
    event = new_event(3, holdTtlSeconds=TTL)
    booking = post("/api/book", event, "a", quantity=2).get_json()["booking"]

    assert booking["status"] == "held"
    assert stamp(booking["holdExpiresAt"]) - stamp(booking["createdAt"]) == timedelta(seconds=TTL)
    now = event_now(client, event)
    assert (now["availableTickets"], now["bookedTickets"], now["heldTickets"]) == (1, 2, 2)
    assert booking_now(client, event, "a") == booking


def test_a_confirm_makes_the_hold_confirmed_with_its_payment_reference(client, engine, held_event, post):
    event = held_event()
    response = post("/api/confirm", event, "holder", paymentReference="pi_123")

    assert response.status_code == 200
    booking = response.get_json()["booking"]
    assert (booking["status"], booking["paymentReference"], booking["holdExpiresAt"] is not None) == (
        "confirmed",
        "pi_123",
        True,
    )
    assert booking_now(client, event, "holder") == booking
    assert (event_now(client, event)["heldTickets"], event_now(client, event)["bookedTickets"]) == (0, 1)
    assert ledger_kinds(engine, event["id"]) == ["held", "paid"]
    assert audit.check(engine).ok


def test_a_repeated_confirm_with_the_same_reference_is_200_and_changes_nothing(engine, held_event, post):
    event = held_event()
    first = post("/api/confirm", event, "holder", paymentReference="pi_123")
    again = post("/api/confirm", event, "holder", paymentReference="pi_123")

    assert again.status_code == 200 and again.get_json() == first.get_json()
    assert ledger_kinds(engine, event["id"]) == ["held", "paid"]


def test_a_repeated_confirm_without_a_reference_is_200_too(held_event, post):
    event = held_event()
    first = post("/api/confirm", event, "holder")

    assert first.status_code == post("/api/confirm", event, "holder").status_code == 200
    assert first.get_json()["booking"]["paymentReference"] is None


@pytest.mark.parametrize(("first", "second"), [("pi_1", "pi_2"), ("pi_1", None), (None, "pi_2")])
def test_a_confirm_with_another_reference_than_the_one_that_confirmed_is_409_already_confirmed(
    held_event, post, first, second
):
    event = held_event()
    post("/api/confirm", event, "holder", **({"paymentReference": first} if first else {}))

    again = post("/api/confirm", event, "holder", **({"paymentReference": second} if second else {}))

    assert_problem(again, 409, "already_confirmed")


def test_a_confirm_with_nothing_held_is_409_no_hold(client, new_event, held_event, post):
    event = held_event("waiter")
    without_holds = new_event(1)
    post("/api/book", without_holds, "confirmed-at-once")
    post("/api/book", event, "gone")  # waiting, then cancelled
    post("/api/cancel", event, "gone")

    for user in ("waiter", "gone", "nobody"):
        assert_problem(post("/api/confirm", event, user), 409, "no_hold")
    assert_problem(post("/api/confirm", without_holds, "confirmed-at-once"), 409, "no_hold")
    assert booking_now(client, event, "waiter")["status"] == "waiting"


def test_a_confirm_of_an_offer_is_409_no_hold(held_event, post):
    event = held_event("waiter", promotion="offer")
    post("/api/cancel", event, "holder")

    assert_problem(post("/api/confirm", event, "waiter"), 409, "no_hold")


def test_a_confirm_at_an_unknown_or_cancelled_event_is_refused_as_for_every_write(
    client, admin_headers, held_event, post
):
    event = held_event()
    assert_problem(post("/api/confirm", {"id": NIL_UUID}, "holder"), 404, "event_not_found")
    assert_problem(post("/api/confirm", {"id": "not-an-id"}, "holder"), 404, "event_not_found")
    client.post(f"/api/events/{event['id']}/cancel", headers=admin_headers)

    assert_problem(post("/api/confirm", event, "holder"), 409, "event_cancelled")


@pytest.mark.parametrize(
    "body",
    [
        {"paymentReference": ""},
        {"paymentReference": "x" * 129},
        {"paymentReference": "pi\n1"},
        {"paymentReference": 12},
        {"userId": None},
        {"unknown": 1},
    ],
    ids=["empty", "129 characters", "control character", "not text", "no user", "unknown field"],
)
def test_a_confirm_with_a_bad_body_is_400_and_changes_nothing(client, held_event, body):
    event = held_event()
    request = {"eventId": event["id"], "userId": "holder", **body}
    response = client.post("/api/confirm", json={name: value for name, value in request.items() if value is not None})

    assert_problem(response, 400, "invalid_request")
    assert booking_now(client, event, "holder")["status"] == "held"


def test_a_confirm_takes_128_characters_of_reference_unicode_included(held_event, post):
    reference = "é" * 128
    response = post("/api/confirm", held_event(), "holder", paymentReference=reference)

    assert response.get_json()["booking"]["paymentReference"] == reference


def test_a_confirm_with_an_idempotency_key_is_replayed_as_stored(held_event, post):
    event = held_event()
    key = {"Idempotency-Key": "payment-pi_123"}
    first = post("/api/confirm", event, "holder", key, paymentReference="pi_123")
    replay = post("/api/confirm", event, "holder", key, paymentReference="pi_123")
    reused = post("/api/confirm", event, "holder", key, paymentReference="pi_456")

    assert replay.headers["Idempotent-Replayed"] == "true" and replay.get_data() == first.get_data()
    assert_problem(reused, 422, "idempotency_key_reused")


def test_a_confirm_after_the_deadline_is_hold_expired_though_no_sweeper_ran(client, held_event, post, run_out):
    event = held_event()
    run_out(event)

    assert_problem(post("/api/confirm", event, "holder", paymentReference="pi_1"), 409, "hold_expired")
    assert booking_now(client, event, "holder")["status"] == "held"  # a refusal changes nothing


def test_the_sweeper_expires_a_hold_and_holds_the_freed_ticket_for_the_next_in_line(
    client, engine, held_event, run_out
):
    event = held_event("waiter", "next")
    run_out(event)

    swept = sweep_expired_holds(engine)  # every event's due holds: other tests' too

    assert swept.expired >= 1 and swept.promoted_bookings >= 1
    expired, promoted = booking_now(client, event, "holder"), booking_now(client, event, "waiter")
    assert (expired["status"], expired["cancelReason"]) == ("cancelled", "hold_expired")
    assert promoted["status"] == "held" and stamp(promoted["holdExpiresAt"]) > stamp(expired["holdExpiresAt"])
    assert booking_now(client, event, "next")["waitingPosition"] == 1
    assert (event_now(client, event)["heldTickets"], event_now(client, event)["availableTickets"]) == (1, 0)
    assert ledger_kinds(engine, event["id"])[-2:] == ["hold_expired", "held"]
    assert audit.check(engine).ok


def test_a_second_sweep_of_the_same_holds_changes_nothing(engine, held_event, run_out):
    event = held_event("waiter")
    run_out(event)
    sweep_expired_holds(engine)
    after_one_sweep = ledger_kinds(engine, event["id"])

    sweep_expired_holds(engine)

    assert ledger_kinds(engine, event["id"]) == after_one_sweep


def test_a_confirm_after_the_sweep_is_hold_expired_until_the_user_books_again(
    client, engine, held_event, post, run_out
):
    event = held_event(total=2)
    post("/api/cancel", event, "holder", quantity=1)  # one ticket left for the new booking
    run_out(event)
    sweep_expired_holds(engine)

    assert_problem(post("/api/confirm", event, "holder"), 409, "hold_expired")
    assert post("/api/book", event, "holder").get_json()["booking"]["status"] == "held"
    assert post("/api/confirm", event, "holder").status_code == 200


def test_an_expired_hold_in_offer_mode_offers_its_tickets_and_the_accepted_offer_is_held(
    client, engine, held_event, post, run_out
):
    event = held_event("waiter", promotion="offer")
    run_out(event)
    sweep_expired_holds(engine)

    assert booking_now(client, event, "waiter")["status"] == "offered"
    accepted = post("/api/accept", event, "waiter").get_json()["booking"]
    assert (accepted["status"], accepted["offerExpiresAt"] is not None) == ("held", True)
    assert accepted["holdExpiresAt"] is not None
    assert ledger_kinds(engine, event["id"])[-3:] == ["hold_expired", "offered", "held"]
    assert event_now(client, event)["heldTickets"] == 1
    assert audit.check(engine).ok


def test_an_expired_offer_in_auto_mode_with_holds_holds_the_tickets_for_the_next(
    client, admin_headers, engine, held_event, post, run_out
):
    event = held_event("waiter", "next", promotion="offer")
    post("/api/cancel", event, "holder")  # offered to the waiter
    client.patch(f"/api/events/{event['id']}", json={"promotion": "auto"}, headers=admin_headers)
    run_out(event, OFFERS_RUN_OUT)
    sweep_expired_offers(engine)

    assert booking_now(client, event, "next")["status"] == "held"
    assert audit.check(engine).ok


def test_a_cancel_of_a_hold_promotes_the_next_in_line_into_a_hold(client, engine, held_event, post):
    event = held_event("waiter")
    cancellation = post("/api/cancel", event, "holder").get_json()

    assert (cancellation["booking"]["status"], cancellation["booking"]["cancelReason"]) == ("cancelled", None)
    promoted = cancellation["promotedBookings"][0]
    assert (promoted["userId"], promoted["status"], promoted["holdExpiresAt"] is not None) == ("waiter", "held", True)
    assert promoted == booking_now(client, event, "waiter") == cancellation["promoted"]
    assert ledger_kinds(engine, event["id"])[-2:] == ["cancelled", "held"]
    assert audit.check(engine).ok


def test_a_cancel_of_a_hold_after_its_deadline_is_told_hold_expired(client, engine, held_event, post, run_out):
    event = held_event()
    run_out(event)

    cancelled = post("/api/cancel", event, "holder").get_json()["booking"]

    assert (cancelled["status"], cancelled["cancelReason"]) == ("cancelled", "hold_expired")
    assert audit.check(engine).ok


def test_a_partial_cancel_of_a_hold_keeps_it_held_with_its_deadline(client, engine, held_event, post):
    event = held_event("waiter", total=3)
    before = booking_now(client, event, "holder")

    cancellation = post("/api/cancel", event, "holder", quantity=1).get_json()

    kept = cancellation["booking"]
    assert (kept["status"], kept["quantity"], kept["holdExpiresAt"]) == ("held", 2, before["holdExpiresAt"])
    assert cancellation["promotedBookings"][0]["status"] == "held"
    assert event_now(client, event)["heldTickets"] == 3
    assert audit.check(engine).ok


def test_a_capacity_raise_holds_the_tickets_for_each_entry_it_promotes(client, admin_headers, engine, held_event):
    event = held_event("a", "b", "c")
    update = client.patch(f"/api/events/{event['id']}", json={"totalTickets": 3}, headers=admin_headers).get_json()

    assert [(b["userId"], b["status"]) for b in update["promotedBookings"]] == [("a", "held"), ("b", "held")]
    assert (update["event"]["heldTickets"], update["event"]["waitingListCount"]) == (3, 1)
    assert audit.check(engine).ok


def test_a_patch_of_the_ttl_applies_to_the_holds_made_after_it(client, admin_headers, held_event, post):
    event = held_event(total=2)
    before = booking_now(client, event, "holder")["holdExpiresAt"]
    patched = client.patch(f"/api/events/{event['id']}", json={"holdTtlSeconds": 60}, headers=admin_headers)
    post("/api/cancel", event, "holder", quantity=1)
    later = post("/api/book", event, "later").get_json()["booking"]

    assert patched.get_json()["event"]["holdTtlSeconds"] == 60
    assert booking_now(client, event, "holder")["holdExpiresAt"] == before
    assert stamp(later["holdExpiresAt"]) - stamp(later["createdAt"]) == timedelta(seconds=60)


def test_null_turns_holds_off_and_the_outstanding_holds_stay_to_be_confirmed(
    client, admin_headers, engine, held_event, post
):
    event = held_event(total=2)
    post("/api/cancel", event, "holder", quantity=1)
    patched = client.patch(f"/api/events/{event['id']}", json={"holdTtlSeconds": None}, headers=admin_headers)

    assert patched.get_json()["event"]["holdTtlSeconds"] is None
    assert post("/api/book", event, "later").get_json()["booking"]["status"] == "confirmed"
    assert booking_now(client, event, "holder")["status"] == "held"
    assert post("/api/confirm", event, "holder").get_json()["booking"]["status"] == "confirmed"
    assert audit.check(engine).ok


def test_a_patch_that_leaves_the_ttl_absent_keeps_it(client, admin_headers, held_event):
    event = held_event()
    patched = client.patch(f"/api/events/{event['id']}", json={"name": "Renamed"}, headers=admin_headers)

    assert patched.get_json()["event"]["holdTtlSeconds"] == TTL


@pytest.mark.parametrize("ttl", [0, 86_401, "900", 1.5])
def test_a_ttl_out_of_range_is_400_on_initialize_and_patch(client, admin_headers, new_event, ttl):
    opened = client.post("/api/initialize", json={"totalTickets": 1, "holdTtlSeconds": ttl}, headers=admin_headers)
    patched = client.patch(f"/api/events/{new_event(1)['id']}", json={"holdTtlSeconds": ttl}, headers=admin_headers)

    assert_problem(opened, 400, "invalid_request")
    assert_problem(patched, 400, "invalid_request")


def test_the_organisers_list_and_its_csv_show_the_hold_and_the_payment(client, admin_headers, held_event, post):
    event = held_event("waiter")
    post("/api/confirm", event, "holder", paymentReference="pi_9")
    rows = client.get(f"/api/events/{event['id']}/bookings", headers=admin_headers).get_json()["bookings"]
    csv = client.get(f"/api/events/{event['id']}/bookings", headers={**admin_headers, "Accept": "text/csv"})

    assert (rows[0]["paymentReference"], rows[0]["holdExpiresAt"] is not None) == ("pi_9", True)
    header, first = csv.get_data(as_text=True).splitlines()[:2]
    assert header.endswith(",holdExpiresAt,paymentReference,items") and first.endswith(",pi_9,standard:1")


def test_the_history_shows_held_then_paid(client, admin_headers, held_event, post):
    event = held_event()
    post("/api/confirm", event, "holder", paymentReference="pi_9")
    history = client.get(f"/api/events/{event['id']}/history", headers=admin_headers).get_json()["entries"]

    assert [entry["kind"] for entry in history] == ["held", "paid"]


@pytest.fixture
def jwt_held(jwt_client, signing_key, new_event):
    """An event with holds on where alice holds a ticket, booked with her own token (AUTH_MODE=jwt)."""

    def book() -> dict:
        event = new_event(1, holdTtlSeconds=TTL)
        booked = jwt_client.post("/api/book", json={"eventId": event["id"]}, headers=bearer(signing_key.token("alice")))
        assert booked.get_json()["booking"]["status"] == "held"
        return event

    return book


@pytest.mark.parametrize(
    ("scopes", "user", "expected"),
    [
        ("", "alice", 403),
        ("bookings:any", "partner", 403),
        ("bookings:confirm", "alice", 200),
        ("bookings:confirm", "payments", 200),
        ("events:admin", "operator", 200),
    ],
    ids=["her own token", "bookings:any", "her own token with bookings:confirm", "the payment backend", "an admin"],
)
def test_in_jwt_mode_only_the_payment_backend_or_an_admin_confirms_a_hold(
    jwt_client, signing_key, jwt_held, scopes, user, expected
):
    event = jwt_held()
    response = jwt_client.post(
        "/api/confirm",
        json={"eventId": event["id"], "userId": "alice", "paymentReference": "pi_1"},
        headers=bearer(signing_key.token(user, scopes)),
    )

    assert response.status_code == expected, response.get_json()
    if expected == 403:
        assert_problem(response, 403, "forbidden")


def test_in_jwt_mode_the_static_admin_token_confirms_a_hold_and_no_token_is_401(jwt_client, admin_headers, jwt_held):
    event = jwt_held()
    body = {"eventId": event["id"], "userId": "alice"}

    assert_problem(jwt_client.post("/api/confirm", json=body), 401, "unauthorized")
    assert jwt_client.post("/api/confirm", json=body, headers=admin_headers).status_code == 200


def test_in_jwt_mode_confirm_requires_the_user_id(jwt_client, signing_key, jwt_held):
    event = jwt_held()
    response = jwt_client.post(
        "/api/confirm", json={"eventId": event["id"]}, headers=bearer(signing_key.token("payments", "bookings:confirm"))
    )

    assert_problem(response, 400, "invalid_request")
