"""Organisers' changes racing the bookings of the same event, each thread on its own connection.

Each race ends with what the tables say: the contract's invariants and first-come-first-served read
from the rows, and `flask check`'s replay of the event's ledger, which fails on any promotion out of
queue order, any booking taken while sales were closed or after the event was called off.
"""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import create_engine, select

from app.booking.domain import (
    CANCELLED,
    CONFIRMED,
    WAITING,
    CapacityBelowBooked,
    DomainError,
    EventCancelled,
    EventChanges,
    SalesClosed,
)
from app.booking.organisers import CancelEvent, UpdateEvent
from app.booking.services import BookTicket, CancelBooking, OpenEvent
from app.database.group_commit import Batcher
from app.database.tables import booking_events, bookings, events
from app.operations import audit
from tests.helpers.races import BARRIER_TIMEOUT_S, race

THREADS = 48
WORKER_GROUP_COMMIT = Batcher()  # the threads play the requests of one worker


@pytest.fixture(scope="module")
def race_engine(database_url):
    engine = create_engine(database_url, pool_size=THREADS, max_overflow=0, pool_timeout=BARRIER_TIMEOUT_S)
    yield engine
    engine.dispose()


def outcome(write, engine) -> str:
    """What a write was told: its result's class, or the refusal's."""
    try:
        return type(write.alone(engine, WORKER_GROUP_COMMIT)).__name__
    except DomainError as refusal:
        return type(refusal).__name__


def race_writes(engine, writes: list) -> list[str]:
    """Race the writes over THREADS threads, dealt round-robin; their outcomes in the order given."""
    lanes = [list(range(lane, len(writes), THREADS)) for lane in range(min(THREADS, len(writes)))]
    done = race([lambda lane=lane: [(i, outcome(writes[i], engine)) for i in lane] for lane in lanes])
    return [told for _, told in sorted(pair for lane in done for pair in lane)]


def open_event(engine, tickets: int, holders: int, waiters: int) -> str:
    event_id = str(OpenEvent(tickets).alone(engine, WORKER_GROUP_COMMIT).id)
    for number in range(holders + waiters):
        BookTicket(event_id, f"early-{number:03d}").alone(engine, WORKER_GROUP_COMMIT)
    return event_id


def assert_the_tables_hold_the_rules(engine, event_id: str) -> None:
    """Invariants and FIFO from the rows, and the ledger replayed by `flask check`."""
    with engine.connect() as conn:
        event = conn.execute(select(events).where(events.c.id == event_id)).one()
        active = (
            conn.execute(
                select(bookings.c.status)
                .where(bookings.c.event_id == event_id, bookings.c.status != CANCELLED)
                .order_by(bookings.c.seq)
            )
            .scalars()
            .all()
        )
        report = audit.Report()
        audit.check_event(conn, event, report)
    confirmed, waiting = active.count(CONFIRMED), active.count(WAITING)
    assert event.available_tickets + confirmed == event.total_tickets and event.available_tickets >= 0
    assert waiting == 0 or event.available_tickets == 0
    assert active == [CONFIRMED] * confirmed + [WAITING] * waiting  # nobody confirmed behind a waiter
    assert report.problems == []


def test_capacity_raises_racing_bookings_and_cancels_keep_the_invariants_and_fifo(race_engine):
    event_id = open_event(race_engine, tickets=20, holders=20, waiters=30)
    raises = [UpdateEvent(event_id, EventChanges(total_tickets=20 + step)) for step in range(1, 41)]
    writes = (
        raises
        + [BookTicket(event_id, f"late-{n:03d}") for n in range(60)]
        + [CancelBooking(event_id, f"early-{n:03d}") for n in range(0, 50, 2)]
    )
    told = Counter(race_writes(race_engine, writes))

    # A total is absolute: one that lands after bookings took more is refused, and changes nothing.
    assert told["EventUpdate"] + told[CapacityBelowBooked.__name__] == len(raises) and told["EventUpdate"] > 0
    assert told["Booking"] == 60 and told["Cancellation"] == 25
    assert_the_tables_hold_the_rules(race_engine, event_id)


def test_capacity_raises_racing_each_other_leave_the_total_the_last_committed_one_set(race_engine):
    event_id = open_event(race_engine, tickets=5, holders=5, waiters=40)
    told = race_writes(
        race_engine, [UpdateEvent(event_id, EventChanges(total_tickets=total)) for total in range(6, 46)]
    )

    with race_engine.connect() as conn:
        last = conn.execute(
            select(booking_events.c.total_tickets_to)
            .where(booking_events.c.event_id == event_id, booking_events.c.kind == "capacity_changed")
            .order_by(booking_events.c.seq.desc())
            .limit(1)
        ).scalar_one()
        total = conn.execute(select(events.c.total_tickets).where(events.c.id == event_id)).scalar_one()
    assert set(told) <= {"EventUpdate", CapacityBelowBooked.__name__} and total == last
    assert_the_tables_hold_the_rules(race_engine, event_id)


def test_no_booking_is_confirmed_after_the_event_cancel_committed(race_engine):
    event_id = open_event(race_engine, tickets=30, holders=10, waiters=0)
    writes = [BookTicket(event_id, f"rush-{n:03d}") for n in range(80)]
    writes.insert(40, CancelEvent(event_id))
    told = race_writes(race_engine, writes)

    with race_engine.connect() as conn:
        kinds = (
            conn.execute(
                select(booking_events.c.kind)
                .where(booking_events.c.event_id == event_id)
                .order_by(booking_events.c.seq)
            )
            .scalars()
            .all()
        )
        still_active = conn.execute(
            select(bookings.c.id).where(bookings.c.event_id == event_id, bookings.c.status != CANCELLED)
        ).all()
    after_cancel = kinds[kinds.index("event_cancelled") + 1 :]
    booked_before = sum(kind in ("booked", "waitlisted") for kind in kinds[: kinds.index("event_cancelled")])

    assert still_active == [] and set(after_cancel) == {"cancelled"}
    assert told.count("Booking") == booked_before - 10  # the ten holders booked before the race
    assert told.count(EventCancelled.__name__) == 80 - told.count("Booking")
    assert_the_tables_hold_the_rules(race_engine, event_id)


def test_sales_toggled_under_load_refuse_exactly_the_bookings_made_while_closed(race_engine):
    event_id = open_event(race_engine, tickets=40, holders=0, waiters=0)
    toggles = [UpdateEvent(event_id, EventChanges(sales_open=step % 2 == 1)) for step in range(20)]
    writes = [BookTicket(event_id, f"user-{n:03d}") for n in range(100)]
    for place, toggle in enumerate(toggles):
        writes.insert(place * 5, toggle)
    told = race_writes(race_engine, writes)

    with race_engine.connect() as conn:
        booked = (
            conn.execute(
                select(booking_events.c.kind).where(
                    booking_events.c.event_id == event_id, booking_events.c.kind.in_(["booked", "waitlisted"])
                )
            )
            .scalars()
            .all()
        )
    assert told.count("Booking") == len(booked)
    assert told.count("Booking") + told.count(SalesClosed.__name__) == 100
    assert_the_tables_hold_the_rules(race_engine, event_id)  # the replay refuses a booking while closed
