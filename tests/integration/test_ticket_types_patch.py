"""PATCHes of ticket types, straight into update_event (one statement, as the service sends it): a change
of a known type alone is made, and its raise promotes by the walk; a second type may hold fewer tickets
than the first already does. Both were found by the fuzz and the state machine against
tests.helpers.typed_rule.TypedSale (on types-core 0a7a622 a PATCH whose only change was a known type's
totalTickets answered ok and changed nothing; on 47b4ebd, below)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from tests.helpers.queue import event_row, open_event
from tests.helpers.typed_rule import read_tables, tables_violations

ADD_OR_CHANGE = text("""
SELECT outcome, promoted_ids FROM update_event(:event, 'test', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                                               CAST(:types AS jsonb))
""")
BOOK = text(
    "SELECT * FROM book_ticket(:event, :user, 'test', NULL, CAST(:codes AS text[]), CAST(:quantities AS int[]))"
)


@pytest.fixture
def conn(engine):
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        yield conn


def change_types(conn, event, *types: dict):
    return conn.execute(ADD_OR_CHANGE, {"event": event, "types": json.dumps(list(types))}).one()


def book(conn, event, user: str, **items: int):
    return conn.execute(
        BOOK, {"event": event, "user": user, "codes": list(items), "quantities": list(items.values())}
    ).one()


def type_totals(conn, event) -> dict[str, int]:
    return {kind.code: kind.total_tickets for kind in read_tables(conn, event).types}


@pytest.mark.parametrize("change", [{"total_tickets": 3}, {"name": "Very important"}, {"max_per_booking": 2}])
def test_a_patch_of_one_known_type_alone_changes_it(conn, change):
    event = open_event(conn, 6)
    assert change_types(conn, event, {"code": "vip", "total_tickets": 2}).outcome == "ok"

    assert change_types(conn, event, {"code": "vip", **change}).outcome == "ok"

    vip = read_tables(conn, event).types[1]
    assert {key: getattr(vip, key) for key in change} == change


def test_a_raise_of_one_type_alone_promotes_the_entry_waiting_for_it(conn):
    event = open_event(conn, 6)
    assert change_types(conn, event, {"code": "vip", "total_tickets": 1}).outcome == "ok"
    assert book(conn, event, "holder", vip=1).booking_status == "confirmed"
    waiting = book(conn, event, "waiter", vip=1)
    assert waiting.booking_status == "waiting"

    raised = change_types(conn, event, {"code": "vip", "total_tickets": 2})

    assert (raised.outcome, raised.promoted_ids) == ("ok", [waiting.booking_id])
    assert type_totals(conn, event) == {"standard": 6, "vip": 2}
    assert event_row(conn, event).available_tickets == 4
    assert tables_violations(read_tables(conn, event)) == []


def test_a_second_type_smaller_than_what_the_first_holds_is_added(conn):
    """Bug on types-core 47b4ebd: going from one type to two, the new type's total was compared with the
    tickets the event holds (its first type's), and refused as capacity_below_booked."""
    event = open_event(conn, 4)
    assert book(conn, event, "holder", standard=3).booking_status == "confirmed"

    added = change_types(conn, event, {"code": "vip", "total_tickets": 1})

    assert (added.outcome, type_totals(conn, event)) == ("ok", {"standard": 4, "vip": 1})
    assert tables_violations(read_tables(conn, event)) == []
