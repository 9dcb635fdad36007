"""Checkout holds racing what else may end them or give tickets (issue 25), each thread on its own
connection. Each race ends with `flask check`: the invariants (available + confirmed + offered + held ==
total, heldTickets) and the ledger replayed."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app.booking.domain import DomainError, EventChanges, HoldExpired, NoHold
from app.booking.holds import sweep_expired_holds
from app.booking.organisers import UpdateEvent
from app.booking.services import BookTicket, CancelBooking, ConfirmHold, OpenEvent
from app.database.group_commit import Batcher
from app.operations import audit
from tests.helpers.database import ledger_kinds
from tests.helpers.races import race
from tests.helpers.waiting import wait_until

SWEEPERS = 6
STATUS = text("SELECT status FROM bookings WHERE event_id = :e AND user_id = :u ORDER BY seq DESC LIMIT 1")
# The event's holds past their time, by the database's clock (which a test cannot move).
RUN_OUT = text("""
UPDATE bookings SET hold_expires_at = clock_timestamp() - interval '1 second'
 WHERE event_id = :e AND status = 'held'
""")
ANY_DUE = text("""
SELECT coalesce(bool_or(clock_timestamp() >= hold_expires_at), false) FROM bookings WHERE event_id = :e AND status = 'held'
""")
# The event's holds in the order they were made: who held, and where that booking stood.
HOLDS_MADE = text("""
SELECT b.user_id, b.seq FROM booking_events l JOIN bookings b ON b.event_id = l.event_id AND b.id = l.booking_id
 WHERE l.event_id = :e AND l.kind = 'held' ORDER BY l.seq
""")


def held_event(engine, total: int, holders: int, waiters: int, ttl_seconds: int = 3600) -> str:
    """An event of `total` tickets with holds on: `holder-0..` hold one each, `waiter-0..` queue behind."""
    event = str(OpenEvent(total, hold_ttl_seconds=ttl_seconds).alone(engine, Batcher()).id)
    for user in [f"holder-{n}" for n in range(holders)] + [f"waiter-{n}" for n in range(waiters)]:
        BookTicket(event, user).alone(engine, Batcher())
    return event


def run_out(engine, event: str) -> None:
    """The event's holds made so far are past their time; the ones made from now on last their TTL."""
    with engine.begin() as conn:
        conn.execute(RUN_OUT, {"e": event})


def sweep_until_nothing_is_due(engine, event: str) -> None:
    """A sweep that met another writer's lock waited for it: later passes expire what is left."""

    def settled() -> bool:
        sweep_expired_holds(engine)
        with engine.connect() as conn:
            return not conn.execute(ANY_DUE, {"e": event}).scalar_one()

    wait_until(settled, "the sweeper's passes leave no hold due")


def status_of(engine, event: str, user: str) -> str:
    with engine.connect() as conn:
        return conn.execute(STATUS, {"e": event, "u": user}).scalar_one()


def holders_in_order(engine, event: str) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(HOLDS_MADE, {"e": event}).all()
    assert [row.seq for row in rows] == sorted(row.seq for row in rows)  # first come, first held
    return [row.user_id for row in rows]


def outcome(job):
    try:
        return job()
    except DomainError as refusal:
        return refusal


def assert_checked(engine) -> None:
    report = audit.check(engine)
    assert report.ok, report.problems


@pytest.mark.parametrize("after_the_deadline", [False, True])
def test_a_confirm_racing_the_sweeper_either_confirms_or_is_hold_expired_never_both(race_engine, after_the_deadline):
    event = held_event(race_engine, total=1, holders=1, waiters=2)
    if after_the_deadline:
        run_out(race_engine, event)

    confirmed, *_ = race(
        [lambda: outcome(lambda: ConfirmHold(event, "holder-0", payment_reference="pi").alone(race_engine, Batcher()))]
        + [lambda: sweep_expired_holds(race_engine) for _ in range(SWEEPERS)]
    )
    sweep_until_nothing_is_due(race_engine, event)

    kinds = ledger_kinds(race_engine, event)
    assert (kinds.count("paid"), kinds.count("hold_expired")) == ((0, 1) if after_the_deadline else (1, 0))
    assert isinstance(confirmed, HoldExpired) == after_the_deadline
    assert status_of(race_engine, event, "waiter-0") == ("held" if after_the_deadline else "waiting")
    assert_checked(race_engine)


def test_a_confirm_racing_the_users_cancel_ends_the_hold_once(race_engine):
    event = held_event(race_engine, total=1, holders=1, waiters=1)

    confirmed, cancelled = race(
        [
            lambda: outcome(lambda: ConfirmHold(event, "holder-0").alone(race_engine, Batcher())),
            lambda: CancelBooking(event, "holder-0").alone(race_engine, Batcher()),
        ]
    )

    kinds = ledger_kinds(race_engine, event)
    # The cancel always goes through; the confirm either came first (paid, then cancelled) or found none.
    assert cancelled.booking.status == "cancelled" and cancelled.promoted.user_id == "waiter-0"
    assert kinds.count("paid") == (0 if isinstance(confirmed, NoHold) else 1)
    assert status_of(race_engine, event, "waiter-0") == "held"
    assert_checked(race_engine)


def test_two_dispatchers_sweeping_the_same_due_holds_expire_each_once_and_hold_for_each_next_once(race_engine):
    event = held_event(race_engine, total=3, holders=3, waiters=5)
    run_out(race_engine, event)

    race([lambda: sweep_expired_holds(race_engine) for _ in range(SWEEPERS)])
    sweep_until_nothing_is_due(race_engine, event)

    assert ledger_kinds(race_engine, event).count("hold_expired") == 3
    assert holders_in_order(race_engine, event) == [f"holder-{n}" for n in range(3)] + [f"waiter-{n}" for n in range(3)]
    assert [status_of(race_engine, event, f"waiter-{n}") for n in range(5)] == ["held"] * 3 + ["waiting"] * 2
    assert_checked(race_engine)


def test_an_expiry_promoting_while_bookings_arrive_keeps_the_queue_first_come_first_served(race_engine):
    event = held_event(race_engine, total=2, holders=2, waiters=1)
    run_out(race_engine, event)

    race(
        [lambda: sweep_expired_holds(race_engine) for _ in range(SWEEPERS)]
        + [lambda n=n: BookTicket(event, f"newcomer-{n}").alone(race_engine, Batcher()) for n in range(4)]
    )
    sweep_until_nothing_is_due(race_engine, event)

    holders = holders_in_order(race_engine, event)
    assert holders[:3] == ["holder-0", "holder-1", "waiter-0"]  # the head first, then newcomers by arrival
    assert len(holders) == 4 and holders[3].startswith("newcomer-")
    assert_checked(race_engine)


def test_a_capacity_raise_racing_bookings_and_confirms_holds_several_at_once_counting_each_ticket_once(
    race_engine,
):
    event = held_event(race_engine, total=2, holders=2, waiters=4)

    race(
        [
            lambda: UpdateEvent(event, EventChanges(total_tickets=6)).alone(race_engine, Batcher()),
            lambda: outcome(lambda: ConfirmHold(event, "holder-0").alone(race_engine, Batcher())),
            lambda: outcome(lambda: ConfirmHold(event, "waiter-0").alone(race_engine, Batcher())),
            lambda: BookTicket(event, "newcomer").alone(race_engine, Batcher()),
        ]
    )

    assert [status_of(race_engine, event, f"waiter-{n}") for n in range(1, 4)] == ["held"] * 3
    assert status_of(race_engine, event, "waiter-0") in ("held", "confirmed")
    assert_checked(race_engine)
