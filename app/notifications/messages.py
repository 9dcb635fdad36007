"""The body a receiver gets: `{"id", "type", "timestamp", "data": {"booking"?, "event"}}`; an event's
message (event.updated, event.cancelled) has no booking, so no `booking` key.

`data` is rendered with the API's own representation (app/booking/representation.py) from the snapshot that the
outbox row keeps of the booking and the event as the change left them (migration 0009), so a
receiver reads the same Booking and Event as a client of the API, new fields included.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import typing
from datetime import datetime
from uuid import UUID

from app.booking.domain import Booking, Event, TicketType, items_of
from app.booking.representation import BookingSchema, EventSchema, utc_timestamp
from app.notifications.model import message_key

BOOKING_SCHEMA, EVENT_SCHEMA = BookingSchema(), EventSchema()


def body(message_id: UUID, message_type: str, occurred_at: datetime, booking: dict | None, event: dict) -> str:
    """The JSON text to send; the same text on every try, as the signature covers it."""
    data = {}
    if booking is not None:
        data["booking"] = BOOKING_SCHEMA.dump(booking_from_snapshot(booking))
    data["event"] = EVENT_SCHEMA.dump(event_from_snapshot(event))
    envelope = {
        "id": message_key(message_id),
        "type": message_type,
        "timestamp": utc_timestamp(occurred_at),
        "data": data,
    }
    return json.dumps(envelope, separators=(",", ":"))


def booking_from_snapshot(row: dict) -> Booking:
    """The Booking of a snapshot, with its items (ticket types, issue 26: from its arrays, or one item of
    the event's first type; none in a snapshot taken before types, migration 0019)."""
    booking = from_snapshot(Booking, row)
    items = items_of(
        row.get("item_types"),
        row.get("item_quantities"),
        row.get("item_tickets_ahead"),
        first_code=row.get("first_code"),
        quantity=booking.quantity,
        tickets_ahead=booking.tickets_ahead,
    )
    return dataclasses.replace(booking, items=items)


def event_from_snapshot(row: dict) -> Event:
    """The Event of a snapshot, with its types as they were (none in a snapshot taken before types)."""
    types = tuple(TicketType(**ticket_type) for ticket_type in row.get("ticket_types") or ())
    return dataclasses.replace(from_snapshot(Event, row), ticket_types=types)


def from_snapshot(cls, row: dict):
    """The dataclass `cls` built from a row as `to_jsonb` wrote it (timestamps as ISO 8601 text)."""
    values = {}
    for name, is_timestamp in _fields(cls):
        if name not in row:  # a snapshot taken before the field was added (offers: migration 0011)
            continue
        value = row[name]
        values[name] = datetime.fromisoformat(value) if is_timestamp and value is not None else value
    return cls(**values)


@functools.cache
def _fields(cls) -> tuple[tuple[str, bool], ...]:
    """(name, whether it holds a timestamp) of each field of `cls`: once per class, as resolving the
    annotations cost 90 µs a message, a third of rendering its body."""
    hints = typing.get_type_hints(cls)
    return tuple((field.name, hints[field.name] in (datetime, datetime | None)) for field in dataclasses.fields(cls))
