"""Races on one event: many threads, each on its own connection, released together by a barrier.

The threads call the service functions directly. Each race ends with the contract's invariants read
straight from the tables (`assert_invariants`) and with checks on what every thread was told.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import pytest
from sqlalchemy import func, select

from app.booking.domain import (
    CANCELLED,
    CONFIRMED,
    WAITING,
    AlreadyBooked,
    AlreadyCancelled,
    BookingNotFound,
    DomainError,
)
from app.booking.services import BOOK, CANCEL, BookTicket, CancelBooking, OpenEvent, get_booking
from app.database.group_commit import Batcher
from app.database.tables import booking_events, bookings, events
from tests.helpers.database import count_rows
from tests.helpers.races import THREADS, race

# --- the race harness (race_engine, a connection per thread, is in tests/concurrency/conftest.py) ---


@dataclass(frozen=True)
class Outcome:
    """What one service call returned, or the class of the domain error it raised."""

    value: object = None
    error: type[DomainError] | None = None

    @property
    def label(self) -> str:
        return self.error.__name__ if self.error else "ok"


def attempt(function, *args) -> Outcome:
    try:
        return Outcome(value=function(*args))
    except DomainError as exc:
        return Outcome(error=type(exc))


def race_calls(calls: list[tuple]) -> list[Outcome]:
    """Race `(function, *args)` calls dealt over at most THREADS threads; the outcomes in call order."""
    numbered = list(enumerate(calls))
    lanes = [numbered[i::THREADS] for i in range(min(THREADS, len(calls)))]
    results = race([lambda lane=lane: [(i, attempt(*call)) for i, call in lane] for lane in lanes])
    return [outcome for _, outcome in sorted((pair for lane in results for pair in lane), key=lambda pair: pair[0])]


def tally(outcomes: list[Outcome]) -> Counter:
    return Counter(outcome.label for outcome in outcomes)


# --- the database, read directly -----------------------------------------------------------------


def assert_invariants(engine, event_id) -> None:
    """The contract's invariants for one event, read straight from the tables."""
    event = event_row(engine, event_id)
    arrival_order = active_statuses_by_arrival(engine, event_id)
    confirmed, waiting = arrival_order.count(CONFIRMED), arrival_order.count(WAITING)
    assert event.available_tickets + confirmed == event.total_tickets
    assert event.available_tickets >= 0
    assert waiting == 0 or event.available_tickets == 0
    assert event.waiting_count == waiting
    assert users_with_several_active_bookings(engine, event_id) == []
    # First come, first served: no waiting entry joined before an entry that holds a ticket.
    assert arrival_order == [CONFIRMED] * confirmed + [WAITING] * waiting


def event_row(engine, event_id):
    with engine.connect() as conn:
        return conn.execute(select(events).where(events.c.id == event_id)).one()


def active_statuses_by_arrival(engine, event_id) -> list[str]:
    statement = (
        select(bookings.c.status)
        .where(bookings.c.event_id == event_id, bookings.c.status != CANCELLED)
        .order_by(bookings.c.seq)
    )
    with engine.connect() as conn:
        return list(conn.execute(statement).scalars())


def users_with_several_active_bookings(engine, event_id) -> list[str]:
    statement = (
        select(bookings.c.user_id)
        .where(bookings.c.event_id == event_id, bookings.c.status != CANCELLED)
        .group_by(bookings.c.user_id)
        .having(func.count() > 1)
    )
    with engine.connect() as conn:
        return list(conn.execute(statement).scalars())


def users_by_status(engine, event_id, status: str) -> list[str]:
    """The users whose bookings have `status`, oldest booking first."""
    statement = (
        select(bookings.c.user_id)
        .where(bookings.c.event_id == event_id, bookings.c.status == status)
        .order_by(bookings.c.seq)
    )
    with engine.connect() as conn:
        return list(conn.execute(statement).scalars())


def statuses_by_booking_id(engine, event_id) -> dict:
    statement = select(bookings.c.id, bookings.c.status).where(bookings.c.event_id == event_id)
    with engine.connect() as conn:
        return dict(conn.execute(statement).all())


def waiting_positions(engine, event_id, users: list[str]) -> list[int | None]:
    """Each user's waitingPosition as the service reports it."""
    return [get_booking(engine, str(event_id), user).waiting_position for user in users]


# --- the writes, as a worker runs them without an Idempotency-Key ------------------------------------

# The threads play the requests of one worker: bookings of an event that queue meanwhile go together.
WORKER_GROUP_COMMIT = Batcher()


def book(engine, event_id: str, user_id: str):
    return BookTicket(event_id, user_id).alone(engine, WORKER_GROUP_COMMIT)


def cancel(engine, event_id: str, user_id: str):
    return CancelBooking(event_id, user_id).alone(engine, WORKER_GROUP_COMMIT)


# --- setting the scene, one request at a time ------------------------------------------------------


def open_event(engine, tickets: int) -> str:
    return str(OpenEvent(tickets).alone(engine, WORKER_GROUP_COMMIT).id)


def book_in_order(engine, event_id: str, users: list[str], status: str) -> None:
    """Book `users` one after the other, each expected to end up with `status`."""
    for user in users:
        assert book(engine, event_id, user).status == status


def sold_out_event(engine, holders: list[str], waiters: list[str]) -> str:
    """An event with a ticket for each holder and `waiters` queued in order behind them."""
    event_id = open_event(engine, len(holders))
    book_in_order(engine, event_id, holders, CONFIRMED)
    book_in_order(engine, event_id, waiters, WAITING)
    return event_id


def names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:03d}" for i in range(count)]


# --- no oversell: a rush of distinct users on 20 tickets -------------------------------------------

RUSH_TICKETS = 20
RUSH_USERS = names("rush", 256)


@dataclass(frozen=True)
class Race:
    event_id: str
    outcomes: list[Outcome]


@pytest.fixture(scope="module")
def booking_rush(race_engine) -> Race:
    event_id = open_event(race_engine, RUSH_TICKETS)
    outcomes = race_calls([(book, race_engine, event_id, user) for user in RUSH_USERS])
    return Race(event_id, outcomes)


def returned_with_status(rush: Race, status: str) -> list:
    return [outcome.value for outcome in rush.outcomes if outcome.value and outcome.value.status == status]


def test_booking_rush_accepts_every_distinct_user(booking_rush):
    assert tally(booking_rush.outcomes) == {"ok": len(RUSH_USERS)}


def test_booking_rush_never_sells_more_tickets_than_the_event_has(booking_rush, race_engine):
    assert_invariants(race_engine, booking_rush.event_id)
    assert len(returned_with_status(booking_rush, CONFIRMED)) == RUSH_TICKETS
    assert len(users_by_status(race_engine, booking_rush.event_id, CONFIRMED)) == RUSH_TICKETS
    assert event_row(race_engine, booking_rush.event_id).available_tickets == 0


def test_booking_rush_queues_the_rest_at_positions_one_to_n(booking_rush):
    positions = sorted(booking.waiting_position for booking in returned_with_status(booking_rush, WAITING))

    assert positions == list(range(1, len(RUSH_USERS) - RUSH_TICKETS + 1))


def test_booking_rush_tells_each_waiter_the_position_the_queue_gives_them(booking_rush, race_engine):
    waiters = returned_with_status(booking_rush, WAITING)
    told = [booking.waiting_position for booking in waiters]

    assert waiting_positions(race_engine, booking_rush.event_id, [b.user_id for b in waiters]) == told


# --- one user, many identical requests at once -------------------------------------------------------

SAME_REQUESTS = 20


@pytest.mark.parametrize("already_sold", [0, 1], ids=["tickets-left", "sold-out"])
def test_one_user_booking_many_times_at_once_gets_exactly_one_booking(race_engine, already_sold):
    event_id = open_event(race_engine, 1)
    book_in_order(race_engine, event_id, names("early", already_sold), CONFIRMED)

    outcomes = race_calls([(book, race_engine, event_id, "eager")] * SAME_REQUESTS)

    assert tally(outcomes) == {"ok": 1, AlreadyBooked.__name__: SAME_REQUESTS - 1}
    assert count_rows(race_engine, bookings, event_id=event_id, user_id="eager") == 1
    assert_invariants(race_engine, event_id)


def test_one_user_cancelling_many_times_at_once_frees_one_ticket_for_one_waiter(race_engine):
    waiters = names("patient", 3)
    event_id = sold_out_event(race_engine, ["leaving"], waiters)

    outcomes = race_calls([(cancel, race_engine, event_id, "leaving")] * SAME_REQUESTS)

    assert tally(outcomes) == {"ok": 1, AlreadyCancelled.__name__: SAME_REQUESTS - 1}
    assert users_by_status(race_engine, event_id, CONFIRMED) == waiters[:1]
    assert_invariants(race_engine, event_id)


# --- FIFO promotion under concurrent cancels -----------------------------------------------------------

HOLDERS = names("holder", 24)
WAITERS = names("waiter", 40)
LEAVING_HOLDERS = HOLDERS[:16]
# Waiters at the back of the queue who give up at the same moment: never among the 16 oldest, so they
# cannot change who is promoted, only shorten the queue.
LEAVING_WAITERS = WAITERS[-8:]


@pytest.fixture(scope="module")
def cancel_rush(race_engine) -> Race:
    event_id = sold_out_event(race_engine, HOLDERS, WAITERS)
    leaving = LEAVING_HOLDERS + LEAVING_WAITERS
    return Race(event_id, race_calls([(cancel, race_engine, event_id, user) for user in leaving]))


def promoted_users(rush: Race) -> list[str]:
    return [outcome.value.promoted.user_id for outcome in rush.outcomes if outcome.value.promoted]


def test_concurrent_cancels_all_succeed(cancel_rush):
    assert tally(cancel_rush.outcomes) == {"ok": len(LEAVING_HOLDERS) + len(LEAVING_WAITERS)}


def test_concurrent_cancels_promote_each_of_the_oldest_waiters_exactly_once(cancel_rush, race_engine):
    promoted = WAITERS[: len(LEAVING_HOLDERS)]

    assert sorted(promoted_users(cancel_rush)) == promoted
    assert set(users_by_status(race_engine, cancel_rush.event_id, CONFIRMED)) == set(
        HOLDERS[len(LEAVING_HOLDERS) :] + promoted
    )
    assert_invariants(race_engine, cancel_rush.event_id)


def test_concurrent_cancels_keep_the_remaining_waiters_in_their_order(cancel_rush, race_engine):
    remaining = [user for user in WAITERS[len(LEAVING_HOLDERS) :] if user not in LEAVING_WAITERS]

    assert users_by_status(race_engine, cancel_rush.event_id, WAITING) == remaining
    assert waiting_positions(race_engine, cancel_rush.event_id, remaining) == list(range(1, len(remaining) + 1))


def test_concurrent_cancels_beyond_the_queue_put_the_spare_tickets_back_on_sale(race_engine):
    holders, waiters, leaving = names("seat", 24), names("hopeful", 8), 20
    event_id = sold_out_event(race_engine, holders, waiters)

    outcomes = race_calls([(cancel, race_engine, event_id, user) for user in holders[:leaving]])

    assert sorted(promoted_users(Race(event_id, outcomes))) == waiters
    assert event_row(race_engine, event_id).available_tickets == leaving - len(waiters)
    assert_invariants(race_engine, event_id)


# --- the storm: random book / cancel / rebook cycles ---------------------------------------------------

STORM_USERS_PER_THREAD = 2
# About as many tickets as storm users hold an active booking at any moment (half of them), so that
# the event keeps selling out and reopening: direct tickets, queueing and promotions all happen.
STORM_TICKETS = THREADS * STORM_USERS_PER_THREAD // 2
STORM_STEPS = 25
# How often a thread asks for what its user's state makes pointless (a second booking, a second cancel).
STORM_ODD_REQUEST_RATE = 0.2


@dataclass
class UserHistory:
    """One storm user, as their own thread knows them: only that thread acts for that user."""

    user_id: str
    active: bool = False
    ever_booked: bool = False
    last_success: tuple[str, object] | None = None

    def expected_error(self, action: str) -> type[DomainError] | None:
        if action == "book":
            return AlreadyBooked if self.active else None
        if self.active:
            return None
        return AlreadyCancelled if self.ever_booked else BookingNotFound

    def record(self, action: str, outcome: Outcome) -> None:
        if outcome.error is None:
            self.active = action == "book"
            self.ever_booked = True
            self.last_success = (action, outcome.value)


@dataclass
class Step:
    user_id: str
    action: str
    expected_error: type[DomainError] | None
    outcome: Outcome


@dataclass
class Storm:
    event_id: str
    steps: list[Step] = field(default_factory=list)
    users: list[UserHistory] = field(default_factory=list)

    def successes(self, action: str) -> list:
        return [step.outcome.value for step in self.steps if step.action == action and not step.outcome.error]


def storm_thread(engine, event_id: str, seed: int) -> tuple[list[UserHistory], list[Step]]:
    rng = random.Random(seed)
    users = [UserHistory(f"storm-{seed:02d}-{n}") for n in range(STORM_USERS_PER_THREAD)]
    steps = []
    for _ in range(STORM_STEPS):
        user = rng.choice(users)
        sensible = "cancel" if user.active else "book"
        action = sensible if rng.random() >= STORM_ODD_REQUEST_RATE else {"book": "cancel", "cancel": "book"}[sensible]
        expected = user.expected_error(action)
        outcome = attempt({"book": book, "cancel": cancel}[action], engine, event_id, user.user_id)
        user.record(action, outcome)
        steps.append(Step(user.user_id, action, expected, outcome))
    return users, steps


@pytest.fixture(scope="module")
def storm(race_engine) -> Storm:
    event_id = open_event(race_engine, STORM_TICKETS)
    results = race([lambda seed=seed: storm_thread(race_engine, event_id, seed) for seed in range(THREADS)])
    storm = Storm(event_id)
    for users, steps in results:
        storm.users += users
        storm.steps += steps
    return storm


def test_storm_keeps_the_invariants(storm, race_engine):
    assert_invariants(race_engine, storm.event_id)


def test_storm_answers_every_request_as_the_users_own_history_predicts(storm):
    surprises = [step for step in storm.steps if step.outcome.error is not step.expected_error]

    assert surprises == []


def expected_final(user: UserHistory) -> tuple[str, object] | None:
    """(kind of state, booking id) after the user's last successful operation."""
    if user.last_success is None:
        return None
    action, value = user.last_success
    if action == "book":
        return "active", value.id
    return CANCELLED, value.booking.id


def final_state(engine, event_id: str, user_id: str) -> tuple[str, object] | None:
    outcome = attempt(get_booking, engine, event_id, user_id)
    if outcome.error is BookingNotFound:
        return None
    booking = outcome.value
    return ("active" if booking.status in (CONFIRMED, WAITING) else booking.status), booking.id


def test_storm_leaves_each_user_as_their_last_successful_operation_left_them(storm, race_engine):
    actual = {user.user_id: final_state(race_engine, storm.event_id, user.user_id) for user in storm.users}

    assert actual == {user.user_id: expected_final(user) for user in storm.users}


def test_storm_keeps_one_booking_row_per_successful_booking(storm, race_engine):
    rows = count_rows(race_engine, bookings, event_id=storm.event_id)
    active = len(active_statuses_by_arrival(race_engine, storm.event_id))

    assert rows == len(storm.successes("book"))
    assert active == len(storm.successes("book")) - len(storm.successes("cancel"))


def test_storm_reports_each_promotion_once_and_only_of_a_waiting_booking(storm, race_engine):
    promoted = [cancellation.promoted.id for cancellation in storm.successes("cancel") if cancellation.promoted]
    booked_waiting = {booking.id for booking in storm.successes("book") if booking.status == WAITING}
    now = statuses_by_booking_id(race_engine, storm.event_id)

    assert promoted, "the storm never promoted anyone, so it tested too little"
    assert len(promoted) == len(set(promoted))
    assert set(promoted) <= booked_waiting
    # A booking that joined the queue holds a ticket now only if a cancel reported promoting it.
    assert {id_ for id_ in booked_waiting if now[id_] == CONFIRMED} <= set(promoted)
    assert [id_ for id_ in promoted if now[id_] == WAITING] == []


# --- timestamps follow the lock: each change is stamped in the order the event lock served it ----------

STAMPED_HOLDERS = names("stamped-holder", 16)
STAMPED_ARRIVALS = names("stamped-arrival", THREADS - len(STAMPED_HOLDERS))


def in_own_transaction(engine, statement, event_id: str, user_id: str, quantity: int | None) -> None:
    """One function call in a transaction of its own, as a keyed write makes it: BEGIN, the call, COMMIT."""
    with engine.begin() as conn:
        parameters = {"event_id": event_id, "user_id": user_id, "request_id": None, "quantity": quantity}
        conn.execute(statement, parameters | {"item_types": None, "item_quantities": None})


def stamps_along_seq(engine, table, event_id: str) -> list:
    statement = select(table.c.created_at).where(table.c.event_id == event_id).order_by(table.c.seq)
    with engine.connect() as conn:
        return list(conn.execute(statement).scalars())


@pytest.fixture(scope="module")
def stamped_rush(race_engine) -> str:
    """A sold-out event where new users queue while holders cancel and promote the oldest waiters."""
    event_id = sold_out_event(race_engine, STAMPED_HOLDERS, names("stamped-waiter", 8))
    race_calls(
        [(in_own_transaction, race_engine, BOOK, event_id, user, 1) for user in STAMPED_ARRIVALS]
        + [(in_own_transaction, race_engine, CANCEL, event_id, user, None) for user in STAMPED_HOLDERS]
    )
    return event_id


@pytest.mark.parametrize("table", [bookings, booking_events], ids=["bookings", "ledger"])
def test_concurrent_changes_are_stamped_in_the_order_the_event_lock_served_them(stamped_rush, race_engine, table):
    stamps = stamps_along_seq(race_engine, table, stamped_rush)

    assert len(stamps) > len(STAMPED_ARRIVALS) and stamps == sorted(stamps)


def test_the_event_is_stamped_with_its_last_change(stamped_rush, race_engine):
    last_change = stamps_along_seq(race_engine, booking_events, stamped_rush)[-1]

    assert event_row(race_engine, stamped_rush).updated_at == last_change
