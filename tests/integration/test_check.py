"""`flask check`: it passes on what the service wrote, and it names each kind of tampering it finds."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from app.booking.services import BookTicket, CancelBooking, OpenEvent, Write
from app.database.group_commit import Batcher
from app.operations import audit
from tests.helpers.database import migrate, problems_after
from tests.helpers.ticket_types import book, family_of_four, give_up, retype


def alone(engine, write: Write):
    """`write` as a worker runs it without an Idempotency-Key."""
    return write.alone(engine, Batcher())


@pytest.fixture
def queue(engine):
    """An event of one ticket: `holder` confirmed, `w1` then `w2` waiting."""
    event_id = str(alone(engine, OpenEvent(1)).id)
    for user in ("holder", "w1", "w2"):
        alone(engine, BookTicket(event_id, user))
    return event_id


def booking_of(user: str) -> str:
    return f"(SELECT id FROM bookings WHERE event_id = :event AND user_id = '{user}')"


def test_an_untouched_event_has_no_problem(engine, queue):
    alone(engine, CancelBooking(queue, "holder"))
    alone(engine, CancelBooking(queue, "w2"))

    assert problems_after(engine, queue, "SELECT 1") == []


@pytest.mark.parametrize(
    "tampering, expected",
    [
        (
            "UPDATE events SET available_tickets = 1, waiting_count = 0, waiting_tickets = 0 WHERE id = :event;"
            f"UPDATE bookings SET status = 'cancelled' WHERE id = {booking_of('holder')}",
            ["the ledger leaves 0", "is cancelled in the table but confirmed in the ledger", "2 bookings are waiting"],
        ),
        (
            f"UPDATE bookings SET status = 'cancelled' WHERE id = {booking_of('w1')}",
            ["waitingListCount 2 but 1 bookings are waiting", "the waiting list differs"],
        ),
        (
            f"UPDATE bookings SET status = 'cancelled' WHERE id = {booking_of('holder')};"
            f"UPDATE bookings SET status = 'confirmed' WHERE id = {booking_of('w2')};"
            "UPDATE events SET waiting_count = 1, waiting_tickets = 1 WHERE id = :event",
            ["holds a ticket but joined after", "is confirmed in the table but waiting in the ledger"],
        ),
        (
            f"DELETE FROM booking_events WHERE booking_id = {booking_of('w2')}",
            ["(waiting) has no ledger entry"],
        ),
        (
            "INSERT INTO booking_events (event_id, booking_id, user_id, kind, quantity)"
            " SELECT :event, gen_random_uuid(), 'holder', 'waitlisted', 1",
            ["the user already held", "is missing in the table but waiting in the ledger"],
        ),
        (
            "UPDATE events SET waiting_tickets = 3, queue_joined_tickets = 3 WHERE id = :event",
            ["waitingTickets 3 but the waiting entries want 2"],
        ),
        (
            f"UPDATE bookings SET queue_ordinal = 2, queue_tickets_before = 1 WHERE id = {booking_of('w1')}",
            ["is at 1 with 0 tickets ahead, but the queue's counters say (2, 1)"],
        ),
        (
            "UPDATE events SET total_tickets = 2, available_tickets = 1 WHERE id = :event;"
            "UPDATE ticket_types SET total_tickets = 2 WHERE event_id = :event",
            # Without a capacity change in the ledger, the replay starts from the row's total.
            ["2 waiting while 1 tickets are available", "the ledger ends with a freed ticket not passed"],
        ),
        (
            "INSERT INTO booking_events (event_id, kind, total_tickets_from, total_tickets_to)"
            " VALUES (:event, 'capacity_changed', 1, 2)",
            ["the ledger ends with a freed ticket not passed", "totalTickets is 1, but the ledger leaves 2"],
        ),
        (
            "UPDATE events SET status = 'cancelled' WHERE id = :event",
            ["the event is cancelled, but the ledger does not cancel it"],
        ),
        (
            "INSERT INTO booking_events (event_id, kind) VALUES (:event, 'sales_closed');"
            "INSERT INTO booking_events (event_id, booking_id, user_id, kind, quantity)"
            " SELECT :event, gen_random_uuid(), 'late', 'waitlisted', 1",
            ["sales were closed", "salesOpen is True, but the ledger leaves False"],
        ),
    ],
    ids=[
        "ticket-vanished",
        "waiter-vanished",
        "queue-jumped",
        "ledger-row-deleted",
        "ledger-row-forged",
        "waiting-tickets-miscounted",
        "place-miscounted",
        "capacity-unrecorded",
        "capacity-raise-without-promotion",
        "cancel-unrecorded",
        "booked-while-closed",
    ],
)
def test_check_names_each_tampering_with_the_rows_or_the_ledger(engine, queue, tampering, expected):
    found = "\n".join(problems_after(engine, queue, tampering))

    assert [fragment for fragment in expected if fragment not in found] == [], found
    assert found.startswith(f"event {queue}: ")


def test_check_finds_negative_available_tickets_even_without_the_constraint_that_forbids_them(engine):
    event_id = str(alone(engine, OpenEvent(1)).id)
    # The check does not trust the schema's own guards: someone may have dropped them.
    oversold = (
        "ALTER TABLE events DROP CONSTRAINT ck_events_available_tickets_range;"
        "UPDATE events SET available_tickets = -1 WHERE id = :event"
    )

    assert f"event {event_id}: availableTickets is negative (-1)" in problems_after(engine, event_id, oversold)


def test_check_finds_waiting_entries_without_a_place_even_without_the_constraint_that_forbids_them(engine, queue):
    placeless = (
        "ALTER TABLE bookings DROP CONSTRAINT ck_bookings_waiting_has_a_place;"
        "UPDATE bookings SET queue_ordinal = NULL WHERE event_id = :event"
    )

    found = "\n".join(problems_after(engine, queue, placeless))

    assert "but the queue's counters say None" in found and "1 more waiting entries are misplaced" in found


def test_check_finds_a_promotion_that_skipped_the_oldest_waiter(engine, queue):
    alone(engine, CancelBooking(queue, "holder"))  # promotes w1
    skip = f"UPDATE booking_events SET booking_id = {booking_of('w2')}, user_id = 'w2'"
    skip += " WHERE kind = 'promoted' AND event_id = :event"

    found = "\n".join(problems_after(engine, queue, skip))

    assert "had waited longer" in found


def test_check_finds_a_freed_ticket_that_went_to_nobody(engine, queue):
    alone(engine, CancelBooking(queue, "holder"))
    found = problems_after(engine, queue, "DELETE FROM booking_events WHERE kind = 'promoted' AND event_id = :event")

    assert any("freed ticket not passed to the waiting entry the FIFO rule promotes" in problem for problem in found)


@pytest.fixture
def scratch_app(scratch_url, make_app):
    """An app on a database of its own, so that what one test breaks no other test sees."""
    migrate(scratch_url, "head")
    return make_app(database_url=scratch_url)  # disposed (make_app) before the database is dropped (scratch_url)


def test_flask_check_exits_0_with_a_summary_when_all_is_well(scratch_app):
    engine = scratch_app.extensions["database"]
    event_id = str(alone(engine, OpenEvent(1)).id)
    alone(engine, BookTicket(event_id, "a"))
    alone(engine, BookTicket(event_id, "b"))
    alone(engine, CancelBooking(event_id, "a"))

    result = scratch_app.test_cli_runner().invoke(args=["check"])

    assert result.exit_code == 0, result.output
    assert result.output == (
        "check passed: 1 events, 2 bookings, 4 ledger entries; every invariant holds and the ledger replays "
        "to the current rows\n"
    )


def test_flask_check_exits_1_listing_each_problem(scratch_app):
    engine = scratch_app.extensions["database"]
    event_id = str(alone(engine, OpenEvent(2)).id)
    alone(engine, BookTicket(event_id, "a"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE events SET available_tickets = 2 WHERE id = :event"), {"event": event_id})

    result = scratch_app.test_cli_runner().invoke(args=["check"])

    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == f"event {event_id}: availableTickets 2 + confirmed 1 + offered 0 + held 0 != totalTickets 2"
    assert lines[-1].startswith("check FAILED: 2 problem(s) in 1 events")


def test_bookings_made_before_the_ledger_existed_replay_after_the_upgrade(scratch_url):
    engine = create_engine(scratch_url)
    try:
        migrate(scratch_url, "0001")
        with engine.begin() as conn:
            new_event = "INSERT INTO events (total_tickets, available_tickets) VALUES (2, 2) RETURNING id"
            event_id = conn.execute(text(new_event)).scalar()
            for call in [
                "book_ticket('a')",
                "book_ticket('b')",
                "book_ticket('c')",
                "book_ticket('d')",
                "cancel_booking('a')",
                "cancel_booking('c')",
                "book_ticket('a')",
                "cancel_booking('b')",
            ]:
                conn.execute(text(f"SELECT * FROM {call.replace('(', '(:event, ')}"), {"event": event_id})
        migrate(scratch_url, "head")

        report = audit.check(engine)

        assert report.problems == [] and (report.bookings, report.ledger_entries) == (5, 8)
    finally:
        engine.dispose()


@pytest.fixture
def family_event(engine):
    return family_of_four(engine)


def test_check_passes_a_family_of_four_served_by_the_rule_with_types(engine, family_event):
    before = problems_after(engine, family_event, "SELECT 1")
    give_up(engine, family_event, "ann-f4", child=2)  # promotes the Smiths, then Bob

    assert before == [] and problems_after(engine, family_event, "SELECT 1") == []
    statuses = "SELECT user_id, status FROM bookings WHERE event_id = :event ORDER BY seq"
    with engine.connect() as conn:
        assert dict(conn.execute(text(statuses), {"event": family_event}).all()) == {
            "ann-f4": "confirmed",
            "smiths-f4": "confirmed",
            "bob-f4": "confirmed",
            "dana-f4": "confirmed",
        }


def test_check_passes_a_raise_of_a_type_and_of_the_event_that_promote(engine, family_event):
    retype(engine, family_event, [{"code": "child", "total_tickets": 4}])  # 3 left: the Smiths want 4
    retype(engine, family_event, [{"code": "parking", "total_tickets": 1}])
    with engine.begin() as conn:
        conn.execute(
            text("SELECT outcome FROM update_event(:event, 'r', NULL, 10, NULL, NULL, NULL, NULL, NULL)"),
            {"event": family_event},
        )

    assert problems_after(engine, family_event, "SELECT 1") == []


@pytest.mark.parametrize(
    "tampering, expected",
    [
        (
            "UPDATE ticket_types SET taken_tickets = taken_tickets + 1 WHERE event_id = :event AND code = 'standard'",
            ["type standard: takenTickets 3 but its holding items hold 2"],
        ),
        (
            "UPDATE ticket_types SET waiting_tickets = 1 WHERE event_id = :event AND code = 'child'",
            ["type child: waitingTickets 1 but its waiting items want 2"],
        ),
        (
            "UPDATE bookings SET item_quantities = ARRAY[1, 3] WHERE event_id = :event AND user_id = 'ann-f4'",
            ["type child: its bookings hold 3 tickets, above its total 2", "holds standard:1;child:3 in the table"],
        ),
        (
            "UPDATE bookings SET item_tickets_before = ARRAY[2, 2] WHERE event_id = :event AND user_id = 'smiths-f4'",
            ["has 0 standard tickets ahead, but its type's counters say 2"],
        ),
    ],
    ids=["taken-miscounted", "waiting-miscounted", "items-forged", "item-place-miscounted"],
)
def test_check_names_each_tampering_with_a_ticket_type(engine, family_event, tampering, expected):
    found = "\n".join(problems_after(engine, family_event, tampering))

    assert [fragment for fragment in expected if fragment not in found] == [], found


def test_check_finds_a_promotion_out_of_the_rules_order_on_an_event_of_several_types(engine, family_event):
    # Bob confirmed while the Smiths, older and wanting standard tickets too, still wait.
    jump = f"""
        UPDATE bookings SET status = 'confirmed', item_tickets_before = NULL WHERE id = {booking_of("bob-f4")};
        UPDATE events SET available_tickets = available_tickets - 1, waiting_count = 1, waiting_tickets = 4
         WHERE id = :event;
        UPDATE ticket_types SET taken_tickets = taken_tickets + 1, waiting_tickets = waiting_tickets - 1
         WHERE event_id = :event AND code = 'standard';
        INSERT INTO booking_events (event_id, booking_id, user_id, kind, quantity, item_types, item_quantities)
        SELECT :event, {booking_of("bob-f4")}, 'bob-f4', 'promoted', 1, ARRAY['standard'], ARRAY[1]"""

    found = "\n".join(problems_after(engine, family_event, jump))

    assert "had waited longer" in found and "holds a ticket but joined after" in found, found


def test_check_passes_an_entry_promoted_past_older_ones_and_the_places_behind_it(engine, family_event):
    book(engine, family_event, "valet", parking=1)  # waits: 3 left, the Smiths want 4
    give_up(engine, family_event, "ann-f4", standard=1)  # the valet, on parking only, goes ahead
    book(engine, family_event, "kid", child=1)
    book(engine, family_event, "late", parking=1)

    assert problems_after(engine, family_event, "SELECT 1") == []
