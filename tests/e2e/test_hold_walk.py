"""The walk issue 25 is checked with: a black-box client over HTTP against `make run`'s launcher (the web
server, and the background process whose hold-sweep unit expires holds), with TTLs of a few seconds.
Book -> held -> confirm (the user's own token refused in jwt mode, the payment backend's accepted; a
repeat harmless, another reference refused); cancel -> the next in line held; expiry -> the next in line
held, each expiry within the 5 s the contract promises; a confirm after the expiry refused. The counts
are checked over HTTP at every step, and the ledger at the end; in AUTH_MODE=open and in AUTH_MODE=jwt
(each user with a token of its own, the payment backend with bookings:confirm)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from app.operations import audit
from tests.helpers.live_server import call
from tests.helpers.waiting import wait_until
from tests.helpers.walks import EXPIRY_DEADLINE_S, EXPIRY_PROMISE_S, LiveClient, assert_refused, moment

USERS = ("holder", "a", "b", "c")
PAYMENTS = "payment-backend"


@dataclass(frozen=True)
class Walker(LiveClient):
    """The hold walk's client: the payment backend's confirm, and the counts it checks at every step."""

    def confirm(self, event_id: str, user: str, reference: str | None, as_user: str = PAYMENTS) -> tuple[int, dict]:
        """POST /api/confirm for `user`'s hold, sent by `as_user` (in jwt mode: with bookings:confirm
        if it is the payment backend, else with that user's own token)."""
        body = {"eventId": event_id, "userId": user, **({"paymentReference": reference} if reference else {})}
        token = None
        if self.token_for:
            token = self.token_for(as_user, "bookings:confirm") if as_user == PAYMENTS else self.token_for(as_user)
        status, _, parsed = call(self.base_url, "POST", "/api/confirm", body, token)
        return status, parsed

    def counts(self, event_id: str) -> tuple[int, list[str], list[str], int]:
        """(availableTickets, confirmed users, held users, waitingListCount), checking available +
        confirmed + held == total, heldTickets and bookedTickets on the way."""
        event = self.admin("GET", f"/api/status/{event_id}")[1]["event"]
        confirmed, held = (self.holders(event_id, status) for status in ("confirmed", "held"))
        assert event["availableTickets"] + len(confirmed) + len(held) == event["totalTickets"], event
        assert (event["heldTickets"], event["bookedTickets"]) == (len(held), len(confirmed) + len(held)), event
        return event["availableTickets"], confirmed, held, event["waitingListCount"]

    def set_ttl(self, event_id: str, seconds: int) -> None:
        status, updated = self.admin("PATCH", f"/api/events/{event_id}", {"holdTtlSeconds": seconds})
        assert (status, updated["event"]["holdTtlSeconds"]) == (200, seconds), updated


@pytest.fixture
def walker(launcher, identity) -> Walker:
    return Walker(launcher.base_url, identity[1])


def hold_expired(walker: Walker, event_id: str, user: str) -> bool:
    booking = walker.booking(event_id, user)
    return (booking["status"], booking["cancelReason"]) == ("cancelled", "hold_expired")


def expiry_lag_s(walker: Walker, event_id: str, user: str) -> float:
    """Seconds from the user's holdExpiresAt to the ledger's `hold_expired` entry for it."""
    entries = walker.ledger(event_id)
    expired = next(entry for entry in entries if (entry["kind"], entry["userId"]) == ("hold_expired", user))
    return (moment(expired["createdAt"]) - moment(walker.booking(event_id, user)["holdExpiresAt"])).total_seconds()


def open_held_event(walker: Walker) -> str:
    """One ticket with holds of a minute, held by `holder`, with a, b, c waiting in that order."""
    status, opened = walker.admin("POST", "/api/initialize", {"totalTickets": 1, "holdTtlSeconds": 60})
    assert status == 201, opened
    event_id = opened["event"]["id"]
    assert [walker.act("/api/book", event_id, user)[0] for user in USERS] == [201] * len(USERS)
    held = walker.booking(event_id, "holder")
    assert held["status"] == "held" and held["holdExpiresAt"] and held["paymentReference"] is None
    assert walker.counts(event_id) == (0, [], ["holder"], 3)
    return event_id


def confirm_the_payment(walker: Walker, event_id: str) -> None:
    if walker.token_for:  # jwt mode: a user may not attest their own payment
        assert_refused(walker.confirm(event_id, "holder", "pi_1", as_user="holder"), 403, "forbidden")
    status, confirmed = walker.confirm(event_id, "holder", "pi_1")
    assert (status, confirmed["booking"]["status"], confirmed["booking"]["paymentReference"]) == (
        200,
        "confirmed",
        "pi_1",
    ), confirmed
    assert walker.confirm(event_id, "holder", "pi_1") == (200, confirmed)  # the backend's retry: harmless
    assert_refused(walker.confirm(event_id, "holder", "pi_2"), 409, "already_confirmed")
    assert walker.counts(event_id) == (0, ["holder"], [], 3)


def cancel_holds_for_the_next(walker: Walker, event_id: str) -> None:
    """With holds of 2 s from now on, the holder's cancel holds the ticket for a."""
    walker.set_ttl(event_id, 2)
    status, cancelled = walker.act("/api/cancel", event_id, "holder")
    assert status == 200 and [(b["userId"], b["status"]) for b in cancelled["promotedBookings"]] == [("a", "held")]
    assert walker.counts(event_id) in ((0, [], ["a"], 2), (0, [], ["b"], 1))  # a's 2 s may be over already


def expiries_hold_for_the_next_within_the_promise(walker: Walker, event_id: str) -> None:
    """a's hold expires and b's is made, b's expires and c's is made, c's expires: the ticket is available
    again, each expiry within 5 s of its holdExpiresAt; a late confirm is hold_expired."""
    for user in ("a", "b", "c"):
        wait_until(
            lambda u=user: hold_expired(walker, event_id, u), f"the sweeper expires {user}'s hold", EXPIRY_DEADLINE_S
        )
    assert walker.counts(event_id) == (1, [], [], 0)
    assert all(0 <= expiry_lag_s(walker, event_id, user) <= EXPIRY_PROMISE_S for user in ("a", "b", "c"))
    assert_refused(walker.confirm(event_id, "a", "pi_late"), 409, "hold_expired")


EXPECTED_LEDGER = [
    ("held", "holder"),
    *[("waitlisted", user) for user in USERS[1:]],
    ("paid", "holder"),
    ("cancelled", "holder"),
    ("held", "a"),
    ("hold_expired", "a"),
    ("held", "b"),
    ("hold_expired", "b"),
    ("held", "c"),
    ("hold_expired", "c"),
]


def test_book_hold_confirm_cancel_and_expiries_walked_over_http_against_the_launcher(walker, engine):
    event_id = open_held_event(walker)
    confirm_the_payment(walker, event_id)
    cancel_holds_for_the_next(walker, event_id)
    expiries_hold_for_the_next_within_the_promise(walker, event_id)

    bookings = [(entry["kind"], entry["userId"]) for entry in walker.ledger(event_id) if entry["userId"]]
    assert bookings == EXPECTED_LEDGER
    assert audit.check(engine).ok
