"""The walk issue 16 is checked with: a black-box client over HTTP against `make run`'s launcher
(gunicorn, and the dispatcher whose sweeper expires offers), with TTLs of a few seconds. Offer ->
accept; a late accept refused by the database's clock before any sweeper came; expiry -> next offered;
decline -> next offered; expiries with the sweeper running, each within the 5 s the contract promises;
an accept after the sweep. The counts are checked over HTTP at every step, and the ledger at the end;
in AUTH_MODE=open and in AUTH_MODE=jwt (each user acting with a token of its own)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from sqlalchemy import text

from app.operations import audit
from tests.helpers.live_server import Launcher
from tests.helpers.waiting import wait_until
from tests.helpers.walks import EXPIRY_DEADLINE_S, EXPIRY_PROMISE_S, LiveClient, assert_refused, moment

USERS = ("holder", "a", "b", "c", "d", "e", "f")
DATABASE_CLOCK_PASSED = text("SELECT clock_timestamp() > CAST(:moment AS timestamptz)")


@dataclass(frozen=True)
class Walker(LiveClient):
    """The offer walk's client: the counts it checks at every step, the offers' time it sets."""

    def counts(self, event_id: str) -> tuple[int, list[str], list[str], int]:
        """(availableTickets, confirmed users, offered users, waitingListCount), checking available +
        confirmed + offered == total and bookedTickets on the way."""
        event = self.admin("GET", f"/api/status/{event_id}")[1]["event"]
        confirmed, offered = (self.holders(event_id, status) for status in ("confirmed", "offered"))
        assert event["availableTickets"] + len(confirmed) + len(offered) == event["totalTickets"], event
        assert event["bookedTickets"] == len(confirmed) + len(offered), event
        return event["availableTickets"], confirmed, offered, event["waitingListCount"]

    def set_ttl(self, event_id: str, seconds: int) -> None:
        status, updated = self.admin("PATCH", f"/api/events/{event_id}", {"offerTtlSeconds": seconds})
        assert (status, updated["event"]["offerTtlSeconds"]) == (200, seconds), updated


@pytest.fixture
def walker(launcher, identity) -> Walker:
    return Walker(launcher.base_url, identity[1])


@contextmanager
def sweeper_paused(launcher: Launcher) -> Iterator[None]:
    """SIGSTOP the dispatcher (and so its sweeper) while the block runs; SIGCONT after."""
    dispatcher = launcher.dispatcher()
    dispatcher.suspend()
    try:
        yield
    finally:
        dispatcher.resume()


def expiry_lag_s(walker: Walker, event_id: str, user: str) -> float:
    """Seconds from the user's offerExpiresAt to the ledger's `expired` entry for it."""
    expired = next(entry for entry in walker.ledger(event_id) if (entry["kind"], entry["userId"]) == ("expired", user))
    return (moment(expired["createdAt"]) - moment(walker.booking(event_id, user)["offerExpiresAt"])).total_seconds()


def expired_offer(walker: Walker, event_id: str, user: str) -> bool:
    booking = walker.booking(event_id, user)
    return (booking["status"], booking["cancelReason"]) == ("cancelled", "expired")


def open_sold_out_event(walker: Walker) -> str:
    """One ticket in offer mode (a minute to accept), held by `holder`, with a..f waiting in that order."""
    status, opened = walker.admin(
        "POST", "/api/initialize", {"totalTickets": 1, "promotion": "offer", "offerTtlSeconds": 60}
    )
    assert status == 201, opened
    event_id = opened["event"]["id"]
    assert [walker.act("/api/book", event_id, user)[0] for user in USERS] == [201] * len(USERS)
    assert walker.counts(event_id) == (0, ["holder"], [], 6)
    return event_id


def offer_then_accept(walker: Walker, event_id: str) -> None:
    status, cancelled = walker.act("/api/cancel", event_id, "holder")
    assert status == 200 and [(b["userId"], b["status"]) for b in cancelled["promotedBookings"]] == [("a", "offered")]
    offer = walker.booking(event_id, "a")
    assert offer["status"] == "offered" and offer["offerExpiresAt"] and offer["cancelReason"] is None
    assert walker.counts(event_id) == (0, [], ["a"], 5)

    status, accepted = walker.act("/api/accept", event_id, "a")
    assert (status, accepted["booking"]["status"]) == (200, "confirmed"), accepted
    assert accepted["booking"]["offerExpiresAt"] == offer["offerExpiresAt"]  # kept as history
    assert walker.counts(event_id) == (0, ["a"], [], 5)


def late_accept_before_any_sweep(walker: Walker, launcher: Launcher, engine, event_id: str) -> None:
    """b is offered the ticket for 1 s while the sweeper is stopped: once the database's clock has
    passed offerExpiresAt, b's accept is 409 offer_expired, and nothing changes."""
    with sweeper_paused(launcher):
        walker.set_ttl(event_id, 1)
        assert walker.act("/api/cancel", event_id, "a")[0] == 200
        walker.set_ttl(event_id, 60)  # the offers made from now on: a minute
        expires_at = walker.booking(event_id, "b")["offerExpiresAt"]
        with engine.connect() as conn:
            wait_until(
                lambda: conn.execute(DATABASE_CLOCK_PASSED, {"moment": expires_at}).scalar_one(),
                "the database's clock passes b's offerExpiresAt",
            )

        assert_refused(walker.act("/api/accept", event_id, "b"), 409, "offer_expired")
        assert walker.booking(event_id, "b")["status"] == "offered"  # not swept yet: the sweeper is stopped
        assert walker.counts(event_id) == (0, [], ["b"], 4)


def expiry_offers_the_next(walker: Walker, event_id: str) -> None:
    """The sweeper, running again, expires b's offer and offers the ticket to c, as one change."""
    wait_until(lambda: expired_offer(walker, event_id, "b"), "the sweeper expires b's offer", EXPIRY_DEADLINE_S)
    assert walker.booking(event_id, "c")["status"] == "offered"
    assert walker.counts(event_id) == (0, [], ["c"], 3)
    expired, offered = walker.ledger(event_id)[-2:]
    assert [(expired["kind"], expired["userId"]), (offered["kind"], offered["userId"])] == [
        ("expired", "b"),
        ("offered", "c"),
    ]
    assert expired["requestId"] == offered["requestId"] and expired["requestId"].startswith("sweep-")


def decline_offers_the_next(walker: Walker, event_id: str) -> None:
    status, declined = walker.act("/api/decline", event_id, "c")
    assert status == 200, declined
    assert (declined["booking"]["status"], declined["booking"]["cancelReason"]) == ("cancelled", "declined")
    assert [(b["userId"], b["status"]) for b in declined["promotedBookings"]] == [("d", "offered")]
    assert walker.counts(event_id) == (0, [], ["d"], 2)


def expiries_within_the_promise(walker: Walker, event_id: str) -> None:
    """With offers of 2 s and the sweeper running: e's offer expires, f is offered, f's expires, and the
    ticket is available again, each expiry within 5 s of its offerExpiresAt."""
    walker.set_ttl(event_id, 2)
    assert walker.act("/api/decline", event_id, "d")[0] == 200
    assert walker.counts(event_id) == (0, [], ["e"], 1)
    wait_until(lambda: expired_offer(walker, event_id, "e"), "the sweeper expires e's offer", EXPIRY_DEADLINE_S)
    assert walker.booking(event_id, "f")["status"] in ("offered", "cancelled")  # f's 2 s may be over already
    wait_until(lambda: expired_offer(walker, event_id, "f"), "the sweeper expires f's offer", EXPIRY_DEADLINE_S)
    assert walker.counts(event_id) == (1, [], [], 0)
    assert 0 <= expiry_lag_s(walker, event_id, "e") <= EXPIRY_PROMISE_S
    assert 0 <= expiry_lag_s(walker, event_id, "f") <= EXPIRY_PROMISE_S


EXPECTED_LEDGER = [
    ("booked", "holder"),
    *[("waitlisted", user) for user in USERS[1:]],
    ("cancelled", "holder"),
    ("offered", "a"),
    ("accepted", "a"),
    ("cancelled", "a"),
    ("offered", "b"),
    ("expired", "b"),
    ("offered", "c"),
    ("declined", "c"),
    ("offered", "d"),
    ("declined", "d"),
    ("offered", "e"),
    ("expired", "e"),
    ("offered", "f"),
    ("expired", "f"),
]


def test_offer_accept_late_accept_expiry_and_decline_walked_over_http_against_the_launcher(walker, launcher, engine):
    event_id = open_sold_out_event(walker)
    offer_then_accept(walker, event_id)
    late_accept_before_any_sweep(walker, launcher, engine, event_id)
    expiry_offers_the_next(walker, event_id)
    decline_offers_the_next(walker, event_id)
    expiries_within_the_promise(walker, event_id)

    assert_refused(walker.act("/api/accept", event_id, "f"), 409, "offer_expired")  # swept: still expired
    assert_refused(walker.act("/api/decline", event_id, "f"), 409, "offer_expired")
    bookings = [(entry["kind"], entry["userId"]) for entry in walker.ledger(event_id) if entry["userId"]]
    assert bookings == EXPECTED_LEDGER
    assert audit.check(engine).ok
