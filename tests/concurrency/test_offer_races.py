"""Offers racing what else may end them (issue 16), each thread on its own connection. Each race ends
with `flask check`: the invariants (available + confirmed + offered == total) and the ledger replayed."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from app.booking.domain import DomainError, EventChanges, NoOffer, OfferExpired
from app.booking.offers import sweep_expired_offers
from app.booking.organisers import UpdateEvent
from app.booking.services import AcceptOffer, BookTicket, CancelBooking, DeclineOffer, OpenEvent
from app.database.group_commit import Batcher
from app.operations import audit
from tests.helpers.database import ledger_kinds
from tests.helpers.races import BARRIER_TIMEOUT_S, race
from tests.helpers.waiting import wait_until

THREADS = 8
STATUS = text("SELECT status FROM bookings WHERE event_id = :e AND user_id = :u ORDER BY seq DESC LIMIT 1")
OFFER_DUE = text("SELECT clock_timestamp() >= min(offer_expires_at) FROM bookings WHERE event_id = :e AND status = 'offered'")


@pytest.fixture(scope="module")
def race_engine(database_url):
    engine = create_engine(database_url, pool_size=THREADS, max_overflow=0, pool_timeout=BARRIER_TIMEOUT_S)
    yield engine
    engine.dispose()


def offered_event(engine, ttl_seconds: int, waiters: int = 1) -> str:
    """An event of one ticket in offer mode whose ticket is offered to `waiter-0`, others queued behind."""
    event = str(OpenEvent(1, promotion="offer", offer_ttl_seconds=ttl_seconds).alone(engine, Batcher()).id)
    for user in ["holder"] + [f"waiter-{n}" for n in range(waiters)]:
        BookTicket(event, user).alone(engine, Batcher())
    CancelBooking(event, "holder").alone(engine, Batcher())
    return event


def status_of(engine, event: str, user: str) -> str:
    with engine.connect() as conn:
        return conn.execute(STATUS, {"e": event, "u": user}).scalar_one()


def outcome(job):
    try:
        return job()
    except DomainError as refusal:
        return refusal


@pytest.mark.parametrize("after_the_deadline", [False, True])
def test_an_accept_racing_the_sweeper_either_confirms_or_is_refused_never_both(race_engine, after_the_deadline):
    event = offered_event(race_engine, ttl_seconds=1 if after_the_deadline else 3600, waiters=2)
    if after_the_deadline:
        def due() -> bool:
            with race_engine.connect() as conn:
                return conn.execute(OFFER_DUE, {"e": event}).scalar_one()
        wait_until(due, "the offer is past its time")

    accepted, _ = race([
        lambda: outcome(lambda: AcceptOffer(event, "waiter-0").alone(race_engine, Batcher())),
        lambda: sweep_expired_offers(race_engine),
    ])

    # A sweep that met the accept's lock skipped the event ('busy'): a later pass expires the offer.
    def settled() -> bool:
        sweep_expired_offers(race_engine)
        return status_of(race_engine, event, "waiter-0") != "offered"

    wait_until(settled, "the sweeper's passes settle the offer")
    kinds = ledger_kinds(race_engine, event)
    assert (kinds.count("accepted"), kinds.count("expired")) == ((0, 1) if after_the_deadline else (1, 0))
    assert isinstance(accepted, (NoOffer, OfferExpired)) == after_the_deadline
    assert audit.check(race_engine).ok


def test_an_accept_racing_a_decline_of_the_same_offer_lets_exactly_one_through(race_engine):
    event = offered_event(race_engine, ttl_seconds=3600, waiters=2)

    results = race([
        lambda: outcome(lambda: AcceptOffer(event, "waiter-0").alone(race_engine, Batcher())),
        lambda: outcome(lambda: DeclineOffer(event, "waiter-0").alone(race_engine, Batcher())),
    ])

    assert sum(not isinstance(result, DomainError) for result in results) == 1
    assert ledger_kinds(race_engine, event).count("accepted") + ledger_kinds(race_engine, event).count("declined") == 1
    assert audit.check(race_engine).ok


def test_a_capacity_raise_racing_declines_keeps_every_ticket_counted_once(race_engine):
    event = offered_event(race_engine, ttl_seconds=3600, waiters=6)

    race([
        lambda: UpdateEvent(event, EventChanges(total_tickets=4)).alone(race_engine, Batcher()),
        lambda: outcome(lambda: DeclineOffer(event, "waiter-0").alone(race_engine, Batcher())),
        lambda: outcome(lambda: CancelBooking(event, "waiter-5").alone(race_engine, Batcher())),
    ])

    assert ledger_kinds(race_engine, event).count("offered") >= 4
    assert audit.check(race_engine).ok
