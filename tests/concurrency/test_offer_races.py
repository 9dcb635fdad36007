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
OFFER_DUE = text(
    "SELECT clock_timestamp() >= min(offer_expires_at) FROM bookings WHERE event_id = :e AND status = 'offered'"
)
ALL_OFFERS_DUE = text("""
SELECT bool_and(clock_timestamp() >= offer_expires_at) FROM bookings WHERE event_id = :e AND status = 'offered'
""")
# The event's offers in the order they were made: who, and where that booking stood in the queue.
OFFERS_MADE = text("""
SELECT l.booking_id, b.user_id, b.seq FROM booking_events l JOIN bookings b ON b.event_id = l.event_id AND b.id = l.booking_id
 WHERE l.event_id = :e AND l.kind = 'offered' ORDER BY l.seq
""")
HELD = text("""
SELECT e.available_tickets, coalesce(sum(b.quantity) FILTER (WHERE b.status = 'offered'), 0) AS offered,
       coalesce(sum(b.quantity) FILTER (WHERE b.status = 'confirmed'), 0) AS confirmed, e.total_tickets
  FROM events e LEFT JOIN bookings b ON b.event_id = e.id WHERE e.id = :e GROUP BY e.id
""")


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


def event_with_due_offers(engine, due: int, holders: int, waiters: int) -> str:
    """An event in offer mode of `due + holders` tickets: `due` offers already past their time (to
    waiter-0, waiter-1, ...), `holders` tickets confirmed, `waiters` entries queued behind the offers.
    Offers made from now on last an hour, so that only the first ones are due during the race."""
    event = str(OpenEvent(due + holders, promotion="offer", offer_ttl_seconds=1).alone(engine, Batcher()).id)
    for user in [f"holder-{n}" for n in range(due + holders)] + [f"waiter-{n}" for n in range(due + waiters)]:
        BookTicket(event, user).alone(engine, Batcher())
    for n in range(due):
        CancelBooking(event, f"holder-{n}").alone(engine, Batcher())

    def all_due() -> bool:
        with engine.connect() as conn:
            return conn.execute(ALL_OFFERS_DUE, {"e": event}).scalar_one()

    wait_until(all_due, "the first offers are past their time")
    UpdateEvent(event, EventChanges(offer_ttl_seconds=3600)).alone(engine, Batcher())
    return event


def sweep_until_nothing_is_due(engine, event: str) -> None:
    """A sweep that met another writer's lock waited for the accept's lock: later passes expire what is left."""

    def settled() -> bool:
        sweep_expired_offers(engine)
        with engine.connect() as conn:
            return not conn.execute(ALL_OFFERS_DUE, {"e": event}).scalar_one()

    wait_until(settled, "the sweeper's passes leave no offer due")


def offers_made(engine, event: str) -> list:
    with engine.connect() as conn:
        return conn.execute(OFFERS_MADE, {"e": event}).all()


def assert_offers_went_once_each_first_come_first_served(engine, event: str, offered: list[str]) -> None:
    """`offered`, in this order, were offered a ticket once each, nobody else was; every ticket is
    counted once (available + confirmed + offered == total); and `flask check` finds nothing."""
    made = offers_made(engine, event)
    assert [row.user_id for row in made] == offered
    assert [row.seq for row in made] == sorted(row.seq for row in made)
    with engine.connect() as conn:
        held = conn.execute(HELD, {"e": event}).one()
    assert held.available_tickets + held.offered + held.confirmed == held.total_tickets
    assert audit.check(engine).ok, audit.check(engine).problems


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

    accepted, _ = race(
        [
            lambda: outcome(lambda: AcceptOffer(event, "waiter-0").alone(race_engine, Batcher())),
            lambda: sweep_expired_offers(race_engine),
        ]
    )

    # The sweep went first or waited for the accept's lock; either way no later pass leaves the offer held.
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

    results = race(
        [
            lambda: outcome(lambda: AcceptOffer(event, "waiter-0").alone(race_engine, Batcher())),
            lambda: outcome(lambda: DeclineOffer(event, "waiter-0").alone(race_engine, Batcher())),
        ]
    )

    assert sum(not isinstance(result, DomainError) for result in results) == 1
    assert ledger_kinds(race_engine, event).count("accepted") + ledger_kinds(race_engine, event).count("declined") == 1
    assert audit.check(race_engine).ok


def test_a_capacity_raise_racing_declines_keeps_every_ticket_counted_once(race_engine):
    event = offered_event(race_engine, ttl_seconds=3600, waiters=6)

    race(
        [
            lambda: UpdateEvent(event, EventChanges(total_tickets=4)).alone(race_engine, Batcher()),
            lambda: outcome(lambda: DeclineOffer(event, "waiter-0").alone(race_engine, Batcher())),
            lambda: outcome(lambda: CancelBooking(event, "waiter-5").alone(race_engine, Batcher())),
        ]
    )

    assert ledger_kinds(race_engine, event).count("offered") >= 4
    assert audit.check(race_engine).ok


def test_an_offer_expiring_while_a_cancel_offers_the_next_ticket_offers_each_to_the_next_in_turn(race_engine):
    event = event_with_due_offers(race_engine, due=1, holders=1, waiters=4)

    race(
        [lambda: sweep_expired_offers(race_engine) for _ in range(THREADS - 1)]
        + [lambda: CancelBooking(event, "holder-1").alone(race_engine, Batcher())]
    )
    sweep_until_nothing_is_due(race_engine, event)

    assert_offers_went_once_each_first_come_first_served(race_engine, event, ["waiter-0", "waiter-1", "waiter-2"])
    assert (status_of(race_engine, event, "waiter-0"), status_of(race_engine, event, "waiter-3")) == (
        "cancelled",
        "waiting",
    )


def test_offers_expiring_while_a_decline_passes_its_ticket_on_are_followed_by_one_offer_each(race_engine):
    event = event_with_due_offers(race_engine, due=2, holders=1, waiters=5)
    CancelBooking(event, "holder-2").alone(race_engine, Batcher())  # waiter-2's offer, for an hour

    race(
        [lambda: sweep_expired_offers(race_engine) for _ in range(THREADS - 1)]
        + [lambda: DeclineOffer(event, "waiter-2").alone(race_engine, Batcher())]
    )
    sweep_until_nothing_is_due(race_engine, event)

    assert_offers_went_once_each_first_come_first_served(race_engine, event, [f"waiter-{n}" for n in range(6)])
    assert [status_of(race_engine, event, f"waiter-{n}") for n in range(7)] == ["cancelled"] * 3 + ["offered"] * 3 + [
        "waiting"
    ]


def test_an_accept_racing_the_users_own_cancel_of_the_offer_ends_it_once_and_offers_the_ticket_on(race_engine):
    event = offered_event(race_engine, ttl_seconds=3600, waiters=2)

    accepted, cancelled = race(
        [
            lambda: outcome(lambda: AcceptOffer(event, "waiter-0").alone(race_engine, Batcher())),
            lambda: outcome(lambda: CancelBooking(event, "waiter-0").alone(race_engine, Batcher())),
        ]
    )

    # Either the accept came first and the cancel gave the confirmed ticket up, or the cancel declined the offer.
    # Less the setting up: the bookings, and the PATCH of the offers' time (event_updated).
    kinds = [kind for kind in ledger_kinds(race_engine, event) if kind not in ("booked", "waitlisted", "event_updated")]
    if isinstance(accepted, NoOffer):
        assert (kinds, cancelled.booking.cancel_reason) == (["cancelled", "offered", "declined", "offered"], "declined")
    else:
        assert (kinds, cancelled.booking.cancel_reason) == (
            ["cancelled", "offered", "accepted", "cancelled", "offered"],
            None,
        )
    assert [row.user_id for row in offers_made(race_engine, event)] == ["waiter-0", "waiter-1"]
    assert audit.check(race_engine).ok
