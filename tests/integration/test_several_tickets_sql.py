"""Several tickets per booking, in the database functions themselves (migration 0008), edge by edge.

Each call is one statement in autocommit mode, as the service sends it. The schema's CHECKs are
tried with rows no function would write: they must refuse them.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from tests.helpers.queue import (
    book_sql,
    booking_rows,
    cancel_sql,
    event_row,
    open_event,
    promotion_sql,
    queue_violations,
)

LEDGER = text("SELECT kind, user_id, quantity FROM booking_events WHERE event_id = :event ORDER BY seq")


@pytest.fixture
def conn(engine):
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        yield conn


def ledger(conn, event) -> list[tuple]:
    return [tuple(row) for row in conn.execute(LEDGER, {"event": event})]


def statuses(conn, event) -> dict[str, tuple]:
    """user -> (status, quantity, position, tickets ahead) of their latest booking."""
    return {
        row.user_id: (row.status, row.quantity, row.waiting_position, row.tickets_ahead)
        for row in booking_rows(conn, event)
    }


@pytest.fixture
def queue(conn):
    """An event of 5 tickets: `holder` holds 3, `big` waits for 4 (it does not fit in 2), `small` for 1."""
    event = open_event(conn, 5)
    for user, quantity in (("holder", 3), ("big", 4), ("small", 1)):
        book_sql(conn, event, user, quantity)
    return event


def test_a_booking_is_confirmed_with_all_its_tickets_when_they_are_available(conn):
    event = open_event(conn, 5)

    row = book_sql(conn, event, "a", 3)

    assert (row.outcome, row.booking_status, row.booking_quantity, row.waiting_position) == ("ok", "confirmed", 3, None)
    assert event_row(conn, event).available_tickets == 2
    assert ledger(conn, event) == [("booked", "a", 3)]


def test_a_booking_that_does_not_fit_waits_whole_and_a_smaller_one_behind_it_waits_too(conn, queue):
    assert statuses(conn, queue) == {
        "holder": ("confirmed", 3, None, None),
        "big": ("waiting", 4, 1, 0),
        "small": ("waiting", 1, 2, 4),
    }
    assert (event_row(conn, queue).available_tickets, event_row(conn, queue).waiting_tickets) == (2, 5)


def test_a_new_entry_is_told_its_place_and_the_tickets_ahead_of_it(conn, queue):
    row = book_sql(conn, queue, "late", 2)

    assert (row.booking_status, row.waiting_position, row.tickets_ahead) == ("waiting", 3, 5)


@pytest.mark.parametrize("quantity", [4, 6], ids=["above-max-per-booking", "above-total-tickets"])
def test_a_quantity_above_what_the_event_allows_is_refused_and_changes_nothing(conn, quantity):
    event = open_event(conn, 5, max_per_booking=3 if quantity == 4 else 10)
    before = event_row(conn, event)

    row = book_sql(conn, event, "a", quantity)

    assert (row.outcome, row.booking_id) == ("quantity_above_limit", None)
    assert (event_row(conn, event), booking_rows(conn, event), ledger(conn, event)) == (before, [], [])


def test_a_partial_cancel_of_a_confirmed_booking_releases_that_many_and_keeps_the_rest(conn):
    event = open_event(conn, 5)
    book_sql(conn, event, "a", 4)

    row = cancel_sql(conn, event, "a", 3)

    assert (row.outcome, row.booking_status, row.booking_quantity, row.promoted_ids) == ("ok", "confirmed", 1, [])
    assert event_row(conn, event).available_tickets == 4
    assert ledger(conn, event)[-1] == ("reduced", "a", 3)


def test_a_waiting_entry_that_shrinks_keeps_its_place_and_those_behind_it_have_fewer_tickets_ahead(conn, queue):
    book_sql(conn, queue, "third", 1)
    book_sql(conn, queue, "fourth", 2)
    cancel_sql(conn, queue, "third", None)  # leaves from the middle

    row = cancel_sql(conn, queue, "small", None)  # the whole of `small`, also from the middle
    assert row.outcome == "ok"

    book_sql(conn, queue, "small", 4)  # queues again, at the back
    shrunk = cancel_sql(conn, queue, "small", 1)

    assert (shrunk.booking_status, shrunk.booking_quantity, shrunk.waiting_position, shrunk.tickets_ahead) == (
        "waiting",
        3,
        3,
        6,
    )
    waiting = sorted((place[2:], user) for user, place in statuses(conn, queue).items() if place[0] == "waiting")
    assert waiting == [((1, 0), "big"), ((2, 4), "fourth"), ((3, 6), "small")]
    assert queue_violations(conn, queue) == []


def test_a_head_that_shrinks_until_it_fits_is_promoted_at_once(conn, queue):
    row = cancel_sql(conn, queue, "big", 2)  # wants 2 now, and 2 are available

    assert (row.booking_status, row.booking_quantity, row.promoted_ids) == ("confirmed", 2, [row.booking_id])
    assert statuses(conn, queue)["big"][:2] == ("confirmed", 2)
    assert queue_violations(conn, queue) == []


def test_cancelling_more_than_is_held_is_refused_and_changes_nothing(conn, queue):
    before = (event_row(conn, queue), booking_rows(conn, queue), ledger(conn, queue))

    row = cancel_sql(conn, queue, "big", 5)

    assert (row.outcome, row.booking_id) == ("quantity_above_held", None)
    assert (event_row(conn, queue), booking_rows(conn, queue), ledger(conn, queue)) == before


def test_cancelling_no_ticket_at_all_is_an_error_that_changes_nothing(conn, queue):
    before = (event_row(conn, queue), booking_rows(conn, queue), ledger(conn, queue))

    with pytest.raises(IntegrityError, match="quantity 0 is not a number of tickets"):
        cancel_sql(conn, queue, "holder", 0)

    assert (event_row(conn, queue), booking_rows(conn, queue), ledger(conn, queue)) == before


def test_freed_tickets_wait_for_the_head_and_no_smaller_booking_behind_it_overtakes(conn, queue):
    row = cancel_sql(conn, queue, "holder", 1)  # 3 available: `big` (4) still does not fit, `small` (1) would

    assert row.promoted_ids == []
    assert statuses(conn, queue)["small"][:3] == ("waiting", 1, 2)
    assert event_row(conn, queue).available_tickets == 3


def test_a_release_promotes_from_the_head_while_each_fits_and_stops_at_the_first_that_does_not(conn, queue):
    book_sql(conn, queue, "third", 3)
    book_sql(conn, queue, "fourth", 1)

    row = cancel_sql(conn, queue, "holder")  # 5 available: big (4), small (1); third (3) does not fit

    assert row.promoted_user_ids == ["big", "small"]
    assert (row.promoted_id, row.promoted_user_id) == (row.promoted_ids[0], "big")
    assert row.promoted_quantities == [4, 1]
    assert [status[:3] for status in statuses(conn, queue).values()] == [
        ("cancelled", 3, None),
        ("confirmed", 4, None),
        ("confirmed", 1, None),
        ("waiting", 3, 1),
        ("waiting", 1, 2),
    ]
    assert ledger(conn, queue)[-3:] == [("cancelled", "holder", 3), ("promoted", "big", 4), ("promoted", "small", 1)]


def test_a_waiting_head_that_leaves_lets_the_entries_behind_it_through_in_the_same_call(conn, queue):
    row = cancel_sql(conn, queue, "big")

    assert row.promoted_user_ids == ["small"]
    assert statuses(conn, queue)["small"][:2] == ("confirmed", 1)
    assert (event_row(conn, queue).available_tickets, event_row(conn, queue).waiting_count) == (1, 0)
    assert queue_violations(conn, queue) == []


def test_the_v1_three_argument_calls_book_and_cancel_one_ticket(conn):
    event = open_event(conn, 1)
    rows = [
        conn.execute(text(f"SELECT * FROM book_ticket(:event, '{user}', 'v1')"), {"event": event}).one()
        for user in ("a", "b")
    ]
    cancelled = conn.execute(text("SELECT * FROM cancel_booking(:event, 'a', 'v1')"), {"event": event}).one()

    assert [(row.booking_status, row.waiting_position, row.booking_quantity) for row in rows] == [
        ("confirmed", None, 1),
        ("waiting", 1, 1),
    ]
    assert (cancelled.promoted_user_id, cancelled.promoted_ids) == ("b", [rows[1].booking_id])


def test_book_many_books_each_element_with_its_own_quantity_in_order(conn):
    event = open_event(conn, 4)
    batch = text("SELECT * FROM book_many(:event, ARRAY['a', 'b', 'c'], ARRAY['r1', 'r2', 'r3'], ARRAY[3, 2, 1])")

    rows = conn.execute(batch, {"event": event}).all()

    assert [(row.booking_status, row.booking_quantity, row.tickets_ahead) for row in rows] == [
        ("confirmed", 3, None),
        ("waiting", 2, 0),
        ("waiting", 1, 2),
    ]


@pytest.mark.parametrize(
    "impossible",
    [
        "UPDATE bookings SET quantity = 0 WHERE event_id = :event",
        "UPDATE bookings SET quantity = 101 WHERE event_id = :event",
        "UPDATE bookings SET queue_ordinal = NULL WHERE event_id = :event AND status = 'waiting'",
        "UPDATE events SET max_per_booking = 0 WHERE id = :event",
        "UPDATE events SET max_per_booking = 101 WHERE id = :event",
        "UPDATE events SET available_tickets = 5, waiting_tickets = 5 WHERE id = :event",
        "UPDATE events SET waiting_tickets = 1 WHERE id = :event",
        "UPDATE events SET queue_promoted_entries = -1 WHERE id = :event",
        "INSERT INTO booking_events (event_id, booking_id, user_id, kind, quantity)"
        " VALUES (:event, gen_random_uuid(), 'x', 'booked', 0)",
        "INSERT INTO queue_departures (event_id, node, entries, tickets) VALUES (:event, 1, 1, 0)",
    ],
    ids=[
        "no-ticket",
        "over-100",
        "waiting-without-place",
        "max-0",
        "max-101",
        "waiting-while-head-fits",
        "fewer-tickets-than-entries",
        "negative-counter",
        "ledger-of-no-ticket",
        "departure-without-ticket",
    ],
)
def test_the_schema_refuses_rows_that_break_the_quantity_invariants(conn, queue, impossible):
    with pytest.raises(IntegrityError, match="check constraint"):
        conn.execute(text(impossible), {"event": queue})


def test_booking_status_gives_the_place_the_queue_s_counters_give_after_departures_from_the_middle(conn, client, queue):
    for user, quantity in (("third", 2), ("fourth", 1)):
        book_sql(conn, queue, user, quantity)
    cancel_sql(conn, queue, "small")  # leaves from the middle
    cancel_sql(conn, queue, "third", 1)  # shrinks, keeping its place

    places = [
        client.get(f"/api/booking-status/{queue}/{user}").get_json()["booking"]["waitingPosition"]
        for user in ("big", "third", "fourth")
    ]

    assert places == [1, 2, 3]


@pytest.fixture(params=[("auto", "confirmed"), ("offer", "offered")], ids=["auto", "offer"])
def one_waiting(conn, request):
    """A sold-out event of 1 ticket in `promotion` mode: `holder` holds it, `waiter` waits; and the
    status a promoted booking gets in that mode."""
    promotion, status = request.param
    event = open_event(conn, 1)
    promotion_sql(conn, event, promotion, 3600)
    book_sql(conn, event, "holder")
    book_sql(conn, event, "waiter")
    return event, promotion, status


def test_a_cancel_returns_the_status_its_promoted_bookings_got(conn, one_waiting):
    event, _, status = one_waiting
    assert cancel_sql(conn, event, "holder").promoted_status == status
    assert statuses(conn, event)["waiter"][0] == status


def test_a_capacity_raise_returns_the_status_its_promoted_bookings_got(conn, one_waiting):
    event, promotion, status = one_waiting
    assert promotion_sql(conn, event, promotion, 3600, total=2).promoted_status == status
    assert statuses(conn, event)["waiter"][0] == status
