"""The JSON shape of a booking and of an event: what a client of the API and a webhook receiver both read.

The API's replies (app/web/schemas.py nests these) and the webhook bodies (app/notifications/messages.py)
render with the same schemas, so a receiver reads the same Booking and Event as a client, new fields
included. Below both, so that neither imports the other. A field is added at the end of its schema:
a body only grows at its end.
"""

from __future__ import annotations

from datetime import UTC, datetime

from marshmallow import Schema, fields, post_dump, validate

from app.booking.domain import AUTO, OFFER

PROMOTIONS = [AUTO, OFFER]
EVENT_STATUSES = ["active", "cancelled"]
BOOKING_STATUSES = ["confirmed", "waiting", "offered", "held", "cancelled", "lobby"]
CANCEL_REASONS = ["declined", "expired", "hold_expired"]


def utc_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with a `Z` and microseconds, as the contract shows."""
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class UtcDateTime(fields.DateTime):
    """RFC 3339 in UTC with a `Z`, as the contract shows."""

    def _serialize(self, value: datetime | None, attr, obj, **kwargs) -> str | None:
        return None if value is None else utc_timestamp(value)


def nullable(field: type[fields.Field], data_key: str, description: str, **kwargs) -> fields.Field:
    """A field every reply has, null when it does not apply."""
    return field(data_key=data_key, allow_none=True, required=True, metadata={"description": description}, **kwargs)


class TicketTypeSchema(Schema):
    code = fields.String(required=True, metadata={"example": "adult"})
    name = fields.String(allow_none=True, required=True)
    total_tickets = fields.Integer(
        data_key="totalTickets", required=True, metadata={"description": "At most the event's totalTickets"}
    )
    max_per_booking = fields.Integer(
        data_key="maxPerBooking",
        required=True,
        metadata={"description": "The most tickets of this type one booking may hold (the event's unless set)"},
    )
    available_tickets = fields.Integer(
        data_key="availableTickets",
        required=True,
        metadata={
            "description": "The type's own room: its total less what its bookings hold; the event's "
            "availableTickets bounds all types together"
        },
    )
    waiting_tickets = fields.Integer(
        data_key="waitingTickets",
        required=True,
        metadata={"description": "Tickets of this type wanted by waiting entries"},
    )


class BookingItemSchema(Schema):
    ticket_type = fields.String(data_key="ticketType", required=True, metadata={"example": "adult"})
    quantity = fields.Integer(required=True, metadata={"example": 2})
    tickets_ahead = fields.Integer(
        data_key="ticketsAhead",
        metadata={"description": "While waiting: the tickets of this type wanted by older waiting entries"},
    )

    @post_dump
    def _place_only_while_waiting(self, data: dict, **kwargs) -> dict:
        if data.get("ticketsAhead") is None:
            data.pop("ticketsAhead", None)
        return data


class EventSchema(Schema):
    id = fields.UUID(required=True)
    name = fields.String(allow_none=True, required=True)
    total_tickets = fields.Integer(data_key="totalTickets", required=True)
    available_tickets = fields.Integer(data_key="availableTickets", required=True)
    booked_tickets = fields.Integer(data_key="bookedTickets", required=True)
    waiting_list_count = fields.Integer(data_key="waitingListCount", attribute="waiting_count", required=True)
    created_at = UtcDateTime(data_key="createdAt", required=True)
    updated_at = UtcDateTime(data_key="updatedAt", required=True)
    # Several tickets per booking: after v1's fields, so that a v1 body only grows at its end.
    max_per_booking = fields.Integer(
        data_key="maxPerBooking", required=True, metadata={"description": "The most tickets one booking may hold"}
    )
    waiting_tickets = fields.Integer(
        data_key="waitingTickets", required=True, metadata={"description": "The tickets wanted by all waiting entries"}
    )
    status = fields.String(
        required=True,
        validate=validate.OneOf(EVENT_STATUSES),
        metadata={"description": "`cancelled` once its organiser called it off: it takes no more changes"},
    )
    sales_open = fields.Boolean(
        data_key="salesOpen", required=True, metadata={"description": "While false, booking is 409 `sales_closed`"}
    )
    promotion = fields.String(
        required=True,
        validate=validate.OneOf(PROMOTIONS),
        metadata={"description": "`auto`: a freed ticket confirms the oldest waiting entry; `offer`: it is offered"},
    )
    offer_ttl_seconds = fields.Integer(
        data_key="offerTtlSeconds", required=True, metadata={"description": "How long an offer holds its tickets"}
    )
    # Checkout holds (issue 25): after the fields before them, so that a body only grows at its end.
    hold_ttl_seconds = fields.Integer(
        data_key="holdTtlSeconds",
        allow_none=True,
        required=True,
        metadata={"description": "How long a booking that gets tickets holds them for its payment; null: no holds"},
    )
    held_tickets = fields.Integer(
        data_key="heldTickets",
        required=True,
        metadata={
            "description": "The tickets in `held` bookings, waiting for their payment (counted in bookedTickets)"
        },
    )
    # Ticket types (issue 26), likewise.
    ticket_types = fields.List(
        fields.Nested(TicketTypeSchema),
        data_key="ticketTypes",
        required=True,
        metadata={"description": "The event's ticket types, in the order they were added (one: `standard`)"},
    )
    # The fair sale opening (issue 27), likewise.
    sales_open_at = nullable(
        UtcDateTime,
        "salesOpenAt",
        "When the sale opens with a draw: bookings before it wait in the lobby, and are drawn at random; null: no lobby",
    )
    lobby_count = fields.Integer(
        data_key="lobbyCount",
        required=True,
        metadata={"description": "Bookings in the lobby now, waiting for the draw (0 once it is done)"},
    )
    drawn_at = nullable(UtcDateTime, "drawnAt", "When the draw was done: every lobby entry booked; null until then")


def offer_expires_at_field() -> fields.Field:
    return nullable(
        UtcDateTime, "offerExpiresAt", "When the offer ends (or ended); null if the booking was never offered"
    )


def cancel_reason_field() -> fields.Field:
    return nullable(
        fields.String,
        "cancelReason",
        "Why an offer was cancelled (`declined` or `expired`), or a hold (`hold_expired`); null otherwise",
        validate=validate.OneOf(CANCEL_REASONS),
    )


def hold_expires_at_field() -> fields.Field:
    return nullable(
        UtcDateTime,
        "holdExpiresAt",
        "When the hold for the payment ends (or ended); null if the booking was never held",
    )


def payment_reference_field() -> fields.Field:
    return nullable(fields.String, "paymentReference", "The reference its confirm gave; null if none")


def booking_items_field(description: str) -> fields.Field:
    return fields.List(fields.Nested(BookingItemSchema), required=True, metadata={"description": description})


class BookingSchema(Schema):
    id = fields.UUID(required=True)
    event_id = fields.UUID(data_key="eventId", required=True)
    user_id = fields.String(data_key="userId", required=True)
    status = fields.String(required=True, validate=validate.OneOf(BOOKING_STATUSES))
    waiting_position = fields.Integer(
        data_key="waitingPosition",
        allow_none=True,
        required=True,
        metadata={"description": "1-based place among the current waiting entries; null unless waiting"},
    )
    created_at = UtcDateTime(data_key="createdAt", required=True)
    updated_at = UtcDateTime(data_key="updatedAt", required=True)
    # Several tickets per booking: after v1's fields, so that a v1 body only grows at its end.
    quantity = fields.Integer(
        required=True,
        metadata={
            "description": "Tickets held, all or none (while waiting: wanted); a cancelled booking keeps "
            "the quantity it held"
        },
    )
    tickets_ahead = fields.Integer(
        data_key="ticketsAhead",
        allow_none=True,
        required=True,
        metadata={"description": "The tickets wanted by the waiting entries ahead; null unless waiting"},
    )
    # Offers (issue 16): after the fields before them, so that a body only grows at its end.
    offer_expires_at = offer_expires_at_field()
    cancel_reason = cancel_reason_field()
    # Checkout holds (issue 25), likewise.
    hold_expires_at = hold_expires_at_field()
    payment_reference = payment_reference_field()
    # Ticket types (issue 26), likewise.
    items = fields.List(
        fields.Nested(BookingItemSchema),
        allow_none=True,
        required=True,
        metadata={
            "description": "Its tickets by type, all or none (on an event of one type, one item); while waiting, "
            "each with the tickets of its type wanted ahead"
        },
    )
    # The fair sale opening (issue 27), likewise.
    lobby_rank = nullable(
        fields.Integer,
        "lobbyRank",
        "Its rank in the sale's draw (1 first), once the draw booked it; null otherwise (in the lobby: not drawn yet)",
    )
