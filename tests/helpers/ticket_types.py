"""Events of several ticket types, set up through the booking functions themselves (update_event,
book_ticket, cancel_booking with items), for tests of what reads them: the audit, the lists, the webhooks."""

from __future__ import annotations

import json

from sqlalchemy import text

from tests.helpers.booking import open_event


def sql(engine, statement: str, **parameters):
    """One call of a booking function, committed; its row."""
    with engine.begin() as conn:
        return conn.execute(text(statement), parameters).one()


def retype(engine, event_id: str, types: list[dict]):
    """The organiser's PATCH of ticket types (update_event.sql), with nothing else changed."""
    row = sql(
        engine,
        "SELECT u.outcome FROM update_event(:event, 'req', NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
        " CAST(:types AS jsonb)) u",
        event=event_id,
        types=json.dumps(types),
    )
    assert row.outcome == "ok"


def book(engine, event_id: str, user: str, **items: int) -> str:
    """`user` books `items` (type code=quantity); the booking's status."""
    return with_items(
        engine, "book_ticket(:event, :user, 'req', :quantity, :codes, :quantities)", event_id, user, items
    )


def give_up(engine, event_id: str, user: str, **items: int) -> None:
    """`user` gives up `items` of their booking (a partial cancel, or the whole of it)."""
    with_items(
        engine, "cancel_booking(:event, :user, 'req', :quantity, false, :codes, :quantities)", event_id, user, items
    )


def with_items(engine, call: str, event_id: str, user: str, items: dict[str, int]) -> str | None:
    """A booking function's call naming `items`, committed; the booking's status, if it answers one."""
    row = sql(
        engine,
        f"SELECT * FROM {call}",
        event=event_id,
        user=user,
        quantity=sum(items.values()),
        codes=list(items),
        quantities=list(items.values()),
    )
    assert row.outcome == "ok"
    return row.booking_status


def family_of_four(engine) -> str:
    """An event of 8 tickets, `standard` (8), `child` (2), `parking` (2); Ann holds 2 + 2 children, the Smiths
    (2 + 2 children) and Bob (1) wait, Dana got parking at once: the README's family of four."""
    event_id = str(open_event(engine, 8).id)
    retype(engine, event_id, [{"code": "child", "total_tickets": 2}, {"code": "parking", "total_tickets": 2}])
    statuses = [
        book(engine, event_id, "ann-f4", standard=2, child=2),
        book(engine, event_id, "smiths-f4", standard=2, child=2),
        book(engine, event_id, "bob-f4", standard=1),
        book(engine, event_id, "dana-f4", parking=1),
    ]
    assert statuses == ["confirmed", "waiting", "waiting", "confirmed"]
    return event_id


def types(*specs: tuple) -> list[dict]:
    """Ticket types, as a request names them, from (code, totalTickets) or (code, totalTickets, maxPerBooking)."""
    return [dict(zip(("code", "totalTickets", "maxPerBooking"), spec, strict=False)) for spec in specs]


def items(**quantities: int) -> list[dict]:
    """A booking's items, as a request names them."""
    return [{"ticketType": code, "quantity": quantity} for code, quantity in quantities.items()]


def by_code(event: dict) -> dict[str, dict]:
    """An event reply's ticket types by code."""
    return {ticket_type["code"]: ticket_type for ticket_type in event["ticketTypes"]}
