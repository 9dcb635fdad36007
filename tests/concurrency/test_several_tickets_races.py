"""Races with several tickets per booking: many threads, each on its own connection, straight into SQL,
and again through the use cases as a worker runs them (bookings of mixed quantities batched by its
group commit).

260 users race for 20 tickets with random quantities (1..4), then every holder and a fifth of the
others cancel at once, about half of them only part of their tickets. After each race the invariants are read from the tables
(tests.helpers.queue_violations: Σ confirmed and offered quantities + available == total, a waiting head never
fits, places 1..n without gaps, ticketsAhead the sum of the quantities ahead), `flask check`'s audit
of the event (which replays the ledger) finds nothing, and the answers add up: every promoted booking
was reported by exactly one cancel.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from sqlalchemy import select

from app.booking.services import BookTicket, CancelBooking, OpenEvent
from app.database.group_commit import Batcher
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


# --- the same rush through the use cases, as a worker runs them: bookings batched by group commit ---

WORKER_GROUP_COMMIT = Batcher()  # the threads play one worker's requests: an event's bookings go together


@pytest.fixture(scope="module")
def service_rush(race_engine):
    """The event after a booking race through services.BookTicket: (event id, quantities, the answers)."""
    chance = random.Random(17)
    quantities = {user: chance.randint(1, MAX_PER_BOOKING) for user in USERS}
    event = str(OpenEvent(TICKETS, max_per_booking=MAX_PER_BOOKING).alone(race_engine, WORKER_GROUP_COMMIT).id)
    answers = race_writes(race_engine, [BookTicket(event, user, quantity=quantities[user]) for user in USERS])
    return event, quantities, answers


def race_writes(engine, writes: list) -> list:
    """Run the use cases over THREADS threads as a worker does (Write.alone, one group commit); the
    answers in input order."""
    lanes = [writes[i::THREADS] for i in range(THREADS)]
    answered = race([lambda lane=lane: [write.alone(engine, WORKER_GROUP_COMMIT) for write in lane] for lane in lanes])
    by_lane = [iter(answers) for answers in answered]
    return [next(by_lane[i % THREADS]) for i in range(len(writes))]


def test_a_rush_through_the_services_answers_each_booking_as_the_tables_hold_it(race_engine, service_rush):
    event, quantities, answers = service_rush
    with race_engine.connect() as conn:
        assert queue_violations(conn, event) == []
        assert audit_problems(conn, event) == []
        rows = {row.user_id: row for row in booking_rows(conn, event)}
    assert all((a.status, a.quantity) == (rows[a.user_id].status, quantities[a.user_id]) for a in answers)
    waiting = sorted((a for a in answers if a.status == "waiting"), key=lambda a: rows[a.user_id].seq)
    # Told at arrival, and nobody has left since: each place is its rank, behind the tickets of those before.
    assert [(a.waiting_position, a.tickets_ahead) for a in waiting] == [
        (rank, sum(b.quantity for b in waiting[: rank - 1])) for rank in range(1, len(waiting) + 1)
    ]


def test_concurrent_cancels_through_the_services_promote_each_waiter_once_by_the_rule(race_engine, service_rush):
    event, quantities, answers = service_rush
    chance = random.Random(37)
    holders = [a.user_id for a in answers if a.status == "confirmed"]
    leaving = holders + chance.sample(sorted(set(USERS) - set(holders)), len(USERS) // 5)
    writes = [
        CancelBooking(event, user, quantity=chance.choice([None, max(1, quantities[user] - 1)])) for user in leaving
    ]

    cancellations = race_writes(race_engine, writes)

    promoted = Counter(b.user_id for c in cancellations for b in c.promoted_bookings)
    assert all(c.promoted == (c.promoted_bookings or [None])[0] for c in cancellations)
    with race_engine.connect() as conn:
        assert queue_violations(conn, event) == []
        assert audit_problems(conn, event) == []
        waiting = {row.user_id for row in booking_rows(conn, event) if row.status == "waiting"}
    assert promoted and not set(promoted) & waiting and max(promoted.values()) == 1
