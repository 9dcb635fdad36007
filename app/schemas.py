"""Marshmallow schemas: they validate the requests and, through flask-smorest, write the OpenAPI document."""

from __future__ import annotations

import unicodedata
from datetime import datetime, timezone

from marshmallow import Schema, ValidationError, fields, validate

# Control characters (Cc) have no place in an id, and lone surrogates (Cs) cannot be stored as UTF-8.
FORBIDDEN_CATEGORIES = {"Cc", "Cs"}


def no_control_characters(value: str) -> None:
    if any(unicodedata.category(char) in FORBIDDEN_CATEGORIES for char in value):
        raise ValidationError("Must not contain control characters.")


class StrictInteger(fields.Integer):
    """An integer that is an integer in the JSON: not `true`, not `"5"`, not `5.5`."""

    def __init__(self, **kwargs) -> None:
        super().__init__(strict=True, **kwargs)

    def _validated(self, value):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._validated(value)


class UtcDateTime(fields.DateTime):
    """RFC 3339 in UTC with a `Z`, as the contract shows."""

    def _serialize(self, value: datetime | None, attr, obj, **kwargs) -> str | None:
        if value is None:
            return None
        return value.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def user_id_field(**kwargs) -> fields.String:
    return fields.String(
        validate=[validate.Length(min=1, max=128), no_control_characters],
        metadata={"description": "1..128 characters, Unicode allowed, no control characters", "example": "user-123"},
        **kwargs,
    )


class InitializeRequest(Schema):
    total_tickets = StrictInteger(
        data_key="totalTickets", required=True, validate=validate.Range(min=1, max=1_000_000),
        metadata={"example": 100},
    )
    name = fields.String(validate=validate.Length(min=1, max=200), metadata={"example": "Spring concert"})


class BookingRequest(Schema):
    event_id = fields.String(
        data_key="eventId", required=True,
        metadata={"description": "The id returned by /api/initialize; opaque to clients"},
    )
    user_id = user_id_field(data_key="userId", required=True)


class BookingPath(Schema):
    """The path of /api/booking-status; its names match the route's so the parsed values replace them."""

    event_id = fields.String(required=True)
    user_id = user_id_field(required=True)


class EventSchema(Schema):
    id = fields.UUID(required=True)
    name = fields.String(allow_none=True, required=True)
    total_tickets = fields.Integer(data_key="totalTickets", required=True)
    available_tickets = fields.Integer(data_key="availableTickets", required=True)
    booked_tickets = fields.Integer(data_key="bookedTickets", required=True)
    waiting_list_count = fields.Integer(data_key="waitingListCount", attribute="waiting_count", required=True)
    created_at = UtcDateTime(data_key="createdAt", required=True)
    updated_at = UtcDateTime(data_key="updatedAt", required=True)


class BookingSchema(Schema):
    id = fields.UUID(required=True)
    event_id = fields.UUID(data_key="eventId", required=True)
    user_id = fields.String(data_key="userId", required=True)
    status = fields.String(required=True, validate=validate.OneOf(["confirmed", "waiting", "cancelled"]))
    waiting_position = fields.Integer(
        data_key="waitingPosition", allow_none=True, required=True,
        metadata={"description": "1-based place among the current waiting entries; null unless waiting"},
    )
    created_at = UtcDateTime(data_key="createdAt", required=True)
    updated_at = UtcDateTime(data_key="updatedAt", required=True)


class EventEnvelope(Schema):
    event = fields.Nested(EventSchema, required=True)


class BookingEnvelope(Schema):
    booking = fields.Nested(BookingSchema, required=True)


class CancellationSchema(Schema):
    booking = fields.Nested(BookingSchema, required=True)
    promoted = fields.Nested(
        BookingSchema, allow_none=True, required=True,
        metadata={"description": "The waiting entry that received the freed ticket, if any"},
    )


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})


class ProblemSchema(Schema):
    """RFC 9457 problem details, with the contract's stable `code`."""

    type = fields.String(required=True, metadata={"example": "about:blank"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    code = fields.String(required=True, metadata={"example": "already_booked"})
    detail = fields.String()
    errors = fields.Dict(
        keys=fields.String(), values=fields.List(fields.String()),
        metadata={"description": "Field-level messages; validation failures only"},
    )
    request_id = fields.String(data_key="requestId")
