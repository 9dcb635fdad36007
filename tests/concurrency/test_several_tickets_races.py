"""Races with several tickets per booking: many threads, each on its own connection, straight into SQL.

260 users race for 20 tickets with random quantities (1..4), then every holder and a fifth of the
others cancel at once, about half of them only part of their tickets. After each race the invariants are read from the tables
(tests.helpers.queue_violations: Σ confirmed quantities + available == total, a waiting head never
fits, places 1..n without gaps, ticketsAhead the sum of the quantities ahead), `flask check`'s audit
of the event (which replays the ledger) finds nothing, and the answers add up: every promoted booking
was reported by exactly one cancel.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from sqlalchemy import select

from app.database.tables import events
from app.operations import audit
from tests.helpers.queue import book_sql, booking_rows, cancel_sql, open_event, queue_violations
from tests.helpers.races import THREADS, race

TICKETS = 20
USERS = [f"user-{n}" for n in range(260)]
MAX_PER_BOOKING = 4


def race_sql(engine, calls: list) -> list:
    """Run (function, *args) SQL calls over THREADS threads, each in autocommit on a connection of its own."""
    lanes = [calls[i::THREADS] for i in range(THREADS)]

    def lane_runner(lane):
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            return [function(conn, *args) for function, *args in lane]

    return [row for rows in race([lambda lane=lane: lane_runner(lane) for lane in lanes]) for row in rows]


def audit_problems(conn, event) -> list[str]:
    report = audit.Report()
    audit.check_event(conn, conn.execute(select(events).where(events.c.id == event)).one(), report)
    return report.problems


@pytest.fixture(scope="module")
def rush(race_engine):
    """The event after the booking race: (event id, each user's quantity, the rows book_ticket returned)."""
    chance = random.Random(13)
    quantities = {user: chance.randint(1, MAX_PER_BOOKING) for user in USERS}
    with race_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        event = open_event(conn, TICKETS, MAX_PER_BOOKING)
    rows = race_sql(race_engine, [(book_sql, event, user, quantities[user]) for user in USERS])
    return event, quantities, rows


def test_a_rush_of_mixed_quantities_keeps_every_invariant(race_engine, rush):
    event, _, rows = rush
    with race_engine.connect() as conn:
        assert queue_violations(conn, event) == []
        assert audit_problems(conn, event) == []
    assert Counter(row.outcome for row in rows) == {"ok": len(USERS)}


def test_a_rush_confirms_whole_bookings_only_and_queues_everyone_else_in_arrival_order(race_engine, rush):
    event, quantities, _ = rush
    with race_engine.connect() as conn:
        rows = booking_rows(conn, event)
    assert all(row.quantity == quantities[row.user_id] for row in rows)
    first_waiting = next(row.seq for row in rows if row.status == "waiting")
    assert all(row.seq < first_waiting for row in rows if row.status == "confirmed")


def test_concurrent_whole_and_partial_cancels_promote_each_waiter_once_by_the_rule(race_engine, rush):
    event, quantities, _ = rush
    chance = random.Random(31)
    with race_engine.connect() as conn:
        holders = [row.user_id for row in booking_rows(conn, event) if row.status == "confirmed"]
    # Every holder (so that tickets are surely freed) and a random fifth of the others.
    leaving = holders + chance.sample(sorted(set(USERS) - set(holders)), len(USERS) // 5)
    calls = [(cancel_sql, event, user, chance.choice([None, max(1, quantities[user] - 1)])) for user in leaving]

    answers = race_sql(race_engine, calls)

    promoted = Counter(user for answer in answers for user in answer.promoted_user_ids)
    with race_engine.connect() as conn:
        waiting = {row.user_id for row in booking_rows(conn, event) if row.status == "waiting"}
        assert queue_violations(conn, event) == []
        assert audit_problems(conn, event) == []
    assert Counter(answer.outcome for answer in answers) == {"ok": len(leaving)}
    assert promoted and not set(promoted) & waiting and max(promoted.values()) == 1
