"""Marshmallow schemas: they validate the requests and, through flask-smorest, write the OpenAPI document.

The Booking and Event that replies nest are app/booking/representation.py's (webhook bodies use them too)."""

from __future__ import annotations

import re
from typing import ClassVar

from flask import current_app, has_app_context
from marshmallow import Schema, ValidationError, fields, missing, post_dump, post_load, validate, validates_schema

from app.booking.domain import (
    AUTO,
    DEFAULT_MAX_PER_BOOKING,
    DEFAULT_OFFER_TTL_SECONDS,
    HOLDS_OFF,
    MAX_HOLD_TTL_SECONDS,
    MAX_OFFER_TTL_SECONDS,
    MAX_PER_BOOKING,
    MAX_TICKET_TYPES,
    MAX_TOTAL_TICKETS,
    OPENING_CLEARED,
    TICKET_TYPE_CODE,
    TicketTypeChange,
)
from app.booking.representation import (
    BOOKING_STATUSES,
    EVENT_STATUSES,
    PROMOTIONS,
    BookingItemSchema,
    BookingSchema,
    EventSchema,
    UtcDateTime,
    booking_items_field,
    cancel_reason_field,
    hold_expires_at_field,
    offer_expires_at_field,
    payment_reference_field,
)

# Control characters (Unicode category Cc) have no place in an id. A regular expression rather than a
# category lookup, so that the OpenAPI document states (as `pattern`) the rule that validation applies.
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f-\x9f]*$"
_NO_CONTROL_CHARACTERS = re.compile(NO_CONTROL_CHARACTERS)


def no_control_characters(value: str) -> None:
    # fullmatch: `$` alone would let a trailing newline through.
    if not _NO_CONTROL_CHARACTERS.fullmatch(value):
        raise ValidationError("Must not contain control characters.")
    # A lone surrogate (JSON allows "\ud800") is not text and cannot be stored as UTF-8.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("Must not contain lone surrogates.") from None


class StrictInteger(fields.Integer):
    """An integer that is an integer in the JSON: not `true`, not `"5"`, not `5.5`.

    `5.0` is 5: JSON Schema (and so the OpenAPI document) counts it as an integer, and a JavaScript
    client cannot even tell the two apart."""

    def __init__(self, **kwargs) -> None:
        super().__init__(strict=True, **kwargs)

    def _validated(self, value):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return super()._validated(value)


def text_field(max_length: int, example: str, cls=fields.String, description: str = "", **kwargs) -> fields.String:
    """1..max_length characters of text, Unicode allowed, no control characters (stated as `pattern`)."""
    return cls(
        validate=[validate.Length(min=1, max=max_length), no_control_characters],
        metadata={
            "description": f"1..{max_length} characters, Unicode allowed, no control characters"
            + (f". {description}" if description else ""),
            "pattern": NO_CONTROL_CHARACTERS,
            "example": example,
        },
        **kwargs,
    )


def user_id_field(**kwargs) -> fields.String:
    return text_field(128, "user-123", **kwargs)


class ActingUserId(fields.String):
    """The body's userId: required with AUTH_MODE=open (v1); optional with AUTH_MODE=jwt, where an
    absent one means the token's `sub` (app/web/identity.py)."""

    def _validate_missing(self, value) -> None:
        if value is missing and not _jwt_mode():
            raise self.make_error("required")
        super()._validate_missing(value)


def _jwt_mode() -> bool:
    return has_app_context() and current_app.config.get("AUTH_MODE") == "jwt"


def promotion_field() -> fields.String:
    return fields.String(
        validate=validate.OneOf(PROMOTIONS),
        metadata={
            "description": "How a freed ticket goes to the oldest waiting entry: `auto` confirms it, `offer` "
            "offers it for `offerTtlSeconds` (accept or decline)",
            "default": AUTO,
        },
    )


def offer_ttl_field() -> StrictInteger:
    return StrictInteger(
        data_key="offerTtlSeconds",
        validate=validate.Range(min=1, max=MAX_OFFER_TTL_SECONDS),
        metadata={
            "description": "How long an offer holds its tickets",
            "example": 3600,
            "default": DEFAULT_OFFER_TTL_SECONDS,
        },
    )


def hold_ttl_field() -> StrictInteger:
    return StrictInteger(
        data_key="holdTtlSeconds",
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_HOLD_TTL_SECONDS),
        metadata={
            "description": "Checkout holds: a booking that gets tickets is `held` this long for its payment "
            "(POST /api/confirm), then expires and its tickets go to the next in line; null: no holds",
            "example": 900,
            "default": None,
        },
    )


def ticket_type_code_field(**kwargs) -> fields.String:
    return fields.String(
        required=True,
        validate=validate.Regexp(TICKET_TYPE_CODE),
        metadata={
            "description": "Lower-case letters, digits and dashes, 1..32",
            "pattern": TICKET_TYPE_CODE,
            "example": "adult",
        },
        **kwargs,
    )


class TicketTypeRequest(Schema):
    """A ticket type to add, or (at a PATCH, by its code) to change."""

    code = ticket_type_code_field()
    name = text_field(200, "Adult")
    total_tickets = StrictInteger(
        data_key="totalTickets",
        validate=validate.Range(min=0, max=MAX_TOTAL_TICKETS),
        metadata={
            "description": "At most the event's totalTickets; the types' totals may add up to more (shared capacity)",
            "example": 80,
        },
    )
    max_per_booking = StrictInteger(
        data_key="maxPerBooking",
        validate=validate.Range(min=1, max=MAX_PER_BOOKING),
        metadata={"description": "The most tickets of this type one booking may hold (default: the event's)"},
    )

    @post_load
    def _change(self, data: dict, **kwargs) -> TicketTypeChange:
        return TicketTypeChange(**data)


class NewTicketTypeRequest(TicketTypeRequest):
    total_tickets = StrictInteger(
        data_key="totalTickets",
        required=True,
        validate=validate.Range(min=0, max=MAX_TOTAL_TICKETS),
        metadata={
            "description": "At most the event's totalTickets; the types' totals may add up to more (shared capacity)",
            "example": 80,
        },
    )


def sales_open_at_field() -> fields.AwareDateTime:
    return fields.AwareDateTime(
        data_key="salesOpenAt",
        allow_none=True,
        metadata={
            "description": "A fair sale opening: until then a booking waits in the lobby (`status: lobby`), "
            "one per user; at this time the lobby is drawn in a uniformly random order and booked in it, so "
            "arriving early is no advantage. RFC 3339 with an offset; null: no lobby",
            "example": "2026-06-01T10:00:00Z",
            "default": None,
        },
    )


def ticket_types_field(schema: type[Schema], description: str) -> fields.List:
    return fields.List(
        fields.Nested(schema),
        data_key="ticketTypes",
        validate=[validate.Length(min=1, max=MAX_TICKET_TYPES), distinct_codes],
        metadata={"description": description, "uniqueItems": True},
    )


def distinct_codes(changes: list[TicketTypeChange]) -> None:
    codes = [change.code for change in changes]
    if len(set(codes)) < len(codes):
        raise ValidationError("Each code may appear once.")


class InitializeRequest(Schema):
    total_tickets = StrictInteger(
        data_key="totalTickets",
        required=True,
        validate=validate.Range(min=1, max=MAX_TOTAL_TICKETS),
        metadata={"example": 100},
    )
    name = text_field(200, "Spring concert")
    max_per_booking = StrictInteger(
        data_key="maxPerBooking",
        validate=validate.Range(min=1, max=MAX_PER_BOOKING),
        metadata={
            "description": "The most tickets one booking may hold",
            "example": 10,
            "default": DEFAULT_MAX_PER_BOOKING,
        },
    )
    promotion = promotion_field()
    offer_ttl_seconds = offer_ttl_field()
    hold_ttl_seconds = hold_ttl_field()
    sales_open_at = sales_open_at_field()
    ticket_types = ticket_types_field(
        NewTicketTypeRequest,
        "1..20 kinds of tickets sharing the event's totalTickets (default: one, `standard`, holding all of it); "
        "codes unique. With one type, the type is the event: its totalTickets and maxPerBooking are the event's "
        "(whatever the type says)",
    )

    @validates_schema
    def _types_within_the_event(self, data: dict, **kwargs) -> None:
        types = data.get("ticket_types") or []
        total = data.get("total_tickets")
        # A lone type too: it is the event, and one below the event's total caps it (services.OpenEvent).
        if total is not None and any(change.total_tickets > total for change in types):
            raise ValidationError("A ticket type's totalTickets may not exceed the event's.", "ticketTypes")


class BookingRequest(Schema):
    event_id = fields.String(
        data_key="eventId",
        required=True,
        metadata={
            "description": "The id returned by /api/initialize; opaque to clients",
            "example": "3f8a1c9e-5b7d-4e2f-9a6c-1d0b8e7f4a25",
        },
    )
    user_id = text_field(
        128,
        "user-123",
        cls=ActingUserId,
        data_key="userId",
        description="Required with AUTH_MODE=open. With AUTH_MODE=jwt: absent means the token's `sub`; another "
        "user needs the `bookings:any` scope, which in turn requires it",
    )


def quantity_field(description: str, **kwargs) -> StrictInteger:
    """A number of tickets. The event's or booking's own limit is only known in the database: going
    over it is the same 400, with `errors.quantity`, from the booking functions (domain.InvalidQuantity)."""
    return StrictInteger(
        validate=validate.Range(min=1, max=MAX_PER_BOOKING),
        metadata={"description": description, "example": 2},
        **kwargs,
    )


class ItemRequest(Schema):
    ticket_type = ticket_type_code_field(data_key="ticketType")
    quantity = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_PER_BOOKING))

    @post_load
    def _pair(self, data: dict, **kwargs) -> tuple[str, int]:
        return data["ticket_type"], data["quantity"]


def items_field(description: str) -> fields.List:
    """Items: (code, quantity) pairs, one per type. The event's limits are known only in the database: going
    over them is the same 400, with `errors.items`, from the booking functions (domain.InvalidItems)."""
    return fields.List(
        fields.Nested(ItemRequest),
        validate=[validate.Length(min=1, max=MAX_TICKET_TYPES), distinct_ticket_types],
        metadata={
            "description": description,
            "example": [{"ticketType": "adult", "quantity": 2}],
            "uniqueItems": True,
        },
    )


def distinct_ticket_types(items: list[tuple[str, int]]) -> None:
    codes = [code for code, _ in items]
    if len(set(codes)) < len(codes):
        raise ValidationError("Each ticketType may appear once.")


class ItemsOrQuantity(BookingRequest):
    """A request that names tickets either as `items` or as a bare `quantity`, not both."""

    openapi_extra: ClassVar[dict] = {"not": {"required": ["items", "quantity"]}}

    @validates_schema(pass_original=True)
    def _items_or_quantity(self, data: dict, original: dict, **kwargs) -> None:
        if "items" in data and isinstance(original, dict) and "quantity" in original:
            raise ValidationError("Give items or quantity, not both.", "items")

    @post_load
    def _tuple(self, data: dict, **kwargs) -> dict:
        if "items" in data:
            data["items"] = tuple(data["items"])
            data["quantity"] = None
        return data


class BookRequest(ItemsOrQuantity):
    quantity = quantity_field(
        "Tickets to book, all or none: 1..the event's maxPerBooking, and at most its totalTickets. On an event "
        "of one type only (else `items`)",
        load_default=1,
    )
    items = items_field(
        "Tickets of each type, all or none (instead of `quantity`): 1..20, one per type; their sum at most the "
        "event's maxPerBooking, each at most its type's maxPerBooking and totalTickets"
    )


class CancelRequest(ItemsOrQuantity):
    quantity = quantity_field(
        "Tickets to give up: 1..the booking's quantity; absent (or all of them) cancels the whole booking. "
        "A waiting entry that shrinks keeps its place. On an event of one type only (else `items`)",
    )
    items = items_field(
        "Tickets of each type to give up (instead of `quantity`), at most what the booking holds of each; a "
        "waiting entry that shrinks keeps its place"
    )


class OfferRequest(BookingRequest):
    """POST /api/accept and /api/decline: the offer is the user's one at the event."""


class ConfirmRequest(BookingRequest):
    """POST /api/confirm: the payment backend names the user whose hold it paid for, in every AUTH_MODE."""

    user_id = user_id_field(data_key="userId", required=True)
    payment_reference = text_field(
        128,
        "pi_3PqR7x2eZvKYlo2C",
        data_key="paymentReference",
        description="The payment's reference, kept on the booking; a repeat with the same one is harmless",
    )


class BookingPath(Schema):
    """The path of /api/booking-status; its names match the route's so the parsed values replace them."""

    event_id = fields.String(required=True)
    user_id = user_id_field(required=True)


class UserPath(Schema):
    """The path of /api/users/<userId>/bookings."""

    user_id = user_id_field(required=True)


class EventEnvelope(Schema):
    event = fields.Nested(EventSchema, required=True)


class BookingEnvelope(Schema):
    booking = fields.Nested(BookingSchema, required=True)


class CancellationSchema(Schema):
    booking = fields.Nested(BookingSchema, required=True)
    promoted = fields.Nested(
        BookingSchema,
        allow_none=True,
        required=True,
        metadata={"description": "The first of `promotedBookings`, if any (for v1 clients)"},
    )
    promoted_bookings = fields.List(
        fields.Nested(BookingSchema),
        data_key="promotedBookings",
        required=True,
        metadata={
            "description": "The waiting entries that the freed tickets confirmed, oldest first: from the "
            "head of the queue while the head fits, stopping at the first that does not"
        },
    )


DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 100, 1000  # entries per page of a list (its `limit`)


def page_limit_field() -> fields.Integer:
    return fields.Integer(
        load_default=DEFAULT_PAGE_SIZE,
        validate=validate.Range(min=1, max=MAX_PAGE_SIZE),
        metadata={"example": DEFAULT_PAGE_SIZE},
    )


def next_after_field() -> fields.Integer:
    return fields.Integer(
        data_key="nextAfter",
        allow_none=True,
        required=True,
        metadata={"description": "`after` for the next page; null on the last page"},
    )


def seq_after() -> fields.Integer:
    # Query strings are text: plain Integer parses "20"; StrictInteger is for JSON bodies.
    return fields.Integer(
        load_default=0,
        validate=validate.Range(min=0, max=2**63 - 1),
        metadata={"description": "Return the entries after this one: 0, or the `nextAfter` of the previous page"},
    )


class HistoryQuery(Schema):
    after = seq_after()
    limit = page_limit_field()


BOOKING_KINDS = ["booked", "waitlisted", "cancelled", "reduced", "promoted"]
OFFER_KINDS = ["offered", "accepted", "declined", "expired"]  # issue 16
HOLD_KINDS = ["held", "paid", "hold_expired"]  # issue 25
TYPE_KINDS = ["type_added", "type_changed"]  # issue 26
ORGANISER_KINDS = ["event_updated", "capacity_changed", "sales_closed", "sales_opened", "event_cancelled"]
LOBBY_KINDS = ["lobby", "lobby_drawn"]  # issue 27: a booking joins the lobby; the event's draw is done


class LedgerEntrySchema(Schema):
    seq = fields.Integer(required=True, metadata={"description": "Position in the service's ledger; increasing"})
    kind = fields.String(
        required=True,
        validate=validate.OneOf(BOOKING_KINDS + OFFER_KINDS + HOLD_KINDS + ORGANISER_KINDS + TYPE_KINDS + LOBBY_KINDS),
        metadata={
            "description": "A booking's change (in offer mode also `offered`, then `accepted`, `declined` or "
            "`expired`; with holds on `held`, then `paid` or `hold_expired`), or an organiser's change of the event (`event_updated` for every PATCH that changes "
            "something, then `capacity_changed`, `type_added`, `type_changed`, `sales_closed`, `sales_opened` as it "
            "did; `event_cancelled`), "
            "whose `bookingId` and `userId` are null: the bookings it touched follow it with the same "
            "`requestId` (`promoted`, `cancelled`). A sale's lobby: `lobby` when a booking joins it, then the "
            "draw books each entry (`booked`, `held` or `waitlisted`, with its `lobbyRank`), and `lobby_drawn` "
            "(no booking) when the draw is done"
        },
    )
    booking_id = fields.UUID(data_key="bookingId", allow_none=True, required=True)
    user_id = fields.String(data_key="userId", allow_none=True, required=True)
    request_id = fields.String(
        data_key="requestId",
        allow_none=True,
        required=True,
        metadata={
            "description": "The server's id of the request that made the change: the X-Request-ID of its response, "
            "unless the client sent its own (never recorded here; both are in the request's log lines)"
        },
    )
    created_at = UtcDateTime(data_key="createdAt", required=True)
    quantity = fields.Integer(
        required=True,
        allow_none=True,
        metadata={
            "description": "The tickets the change concerns: booked, waitlisted, released or confirmed; "
            "null on an organiser's entry"
        },
    )
    total_tickets_from = fields.Integer(
        data_key="totalTicketsFrom",
        metadata={
            "description": "`capacity_changed`: the event's totalTickets before; `type_*`: the type's (0: added)"
        },
    )
    total_tickets_to = fields.Integer(
        data_key="totalTicketsTo",
        metadata={"description": "`capacity_changed`: the event's totalTickets after; `type_*`: the type's"},
    )
    # Ticket types (issue 26): after the fields before them, so that an entry only grows at its end.
    items = fields.List(
        fields.Nested(BookingItemSchema),
        metadata={"description": "A booking's change: the tickets of each type it concerns (their sum is `quantity`)"},
    )
    ticket_type = fields.String(
        data_key="ticketType", metadata={"description": "`type_added` and `type_changed` only: the type's code"}
    )
    lobby_rank = fields.Integer(
        data_key="lobbyRank", metadata={"description": "On the entry that books a lobby entry drawn: its rank"}
    )

    @post_dump
    def _only_what_the_kind_has(self, data: dict, **kwargs) -> dict:
        # A booking's entry reads as it always did, plus its items; an organiser's has no items.
        for key in ("totalTicketsFrom", "totalTicketsTo", "items", "ticketType", "lobbyRank"):
            if data.get(key) is None:
                data.pop(key, None)
        return data


class HistoryPageSchema(Schema):
    entries = fields.List(fields.Nested(LedgerEntrySchema), required=True)
    next_after = next_after_field()


class UserBookingsQuery(Schema):
    after = fields.Integer(
        load_default=None,
        validate=validate.Range(min=1, max=2**63 - 1),
        metadata={
            "description": "Return the bookings older than this cursor: the `nextAfter` of the previous page; "
            "absent for the newest"
        },
    )
    limit = page_limit_field()


class UserBookingsPageSchema(Schema):
    bookings = fields.List(fields.Nested(BookingSchema), required=True)
    next_after = next_after_field()


class StrictBoolean(fields.Boolean):
    """`true` or `false` in the JSON, not `1`, `"yes"` or `"true"`."""

    def _deserialize(self, value, attr, data, **kwargs) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class EventsQuery(Schema):
    status = fields.String(validate=validate.OneOf(EVENT_STATUSES))
    after = fields.Integer(
        validate=validate.Range(min=1, max=2**63 - 1),
        metadata={
            "description": "Return the events older than this one: the `nextAfter` of the previous page; "
            "absent for the first"
        },
    )
    limit = page_limit_field()


class EventsPageSchema(Schema):
    events = fields.List(fields.Nested(EventSchema), required=True)
    next_after = next_after_field()


class EventPatchRequest(Schema):
    name = text_field(200, "Spring concert")
    total_tickets = StrictInteger(
        data_key="totalTickets",
        validate=validate.Range(min=1, max=MAX_TOTAL_TICKETS),
        metadata={"description": "A raise confirms waiting entries first come, first served", "example": 150},
    )
    max_per_booking = StrictInteger(data_key="maxPerBooking", validate=validate.Range(min=1, max=MAX_PER_BOOKING))
    sales_open = StrictBoolean(data_key="salesOpen")
    promotion = promotion_field()
    offer_ttl_seconds = offer_ttl_field()
    hold_ttl_seconds = hold_ttl_field()
    ticket_types = ticket_types_field(
        TicketTypeRequest,
        "Types to add (a new code; totalTickets required) or change (by code: name, totalTickets, maxPerBooking); "
        "types not listed stay. A type's totalTickets may not exceed the event's; a raise confirms waiting entries "
        "by the FIFO rule with types; below what the type holds is 409 `capacity_below_booked`",
    )
    sales_open_at = sales_open_at_field()

    @post_load
    def _null_turns_off(self, data: dict, **kwargs) -> dict:
        # Absent leaves the setting; null is a change: to no holds (the holds made before it stay), to no
        # opening (entries already in the lobby are then drawn at once: update_event.sql).
        if "hold_ttl_seconds" in data and data["hold_ttl_seconds"] is None:
            data["hold_ttl_seconds"] = HOLDS_OFF
        if "sales_open_at" in data and data["sales_open_at"] is None:
            data["sales_open_at"] = OPENING_CLEARED
        if "ticket_types" in data:
            data["ticket_types"] = tuple(data["ticket_types"])
        return data


class EventUpdateSchema(Schema):
    event = fields.Nested(EventSchema, required=True)
    promoted_bookings = fields.List(
        fields.Nested(BookingSchema),
        data_key="promotedBookings",
        required=True,
        metadata={"description": "The waiting entries a capacity raise confirmed, in queue order"},
    )


class WaitingListQuery(Schema):
    after = seq_after()
    limit = page_limit_field()


class WaitingEntrySchema(Schema):
    id = fields.UUID(required=True)
    user_id = fields.String(data_key="userId", required=True)
    quantity = fields.Integer(required=True)
    position = fields.Integer(required=True, metadata={"description": "1-based place in the waiting list"})
    tickets_ahead = fields.Integer(
        data_key="ticketsAhead", required=True, metadata={"description": "Tickets wanted by the entries ahead"}
    )
    created_at = UtcDateTime(data_key="createdAt", required=True)
    items = booking_items_field(
        "What it wants of each type (issue 26), with the tickets of that type wanted ahead of it"
    )


class WaitingListPageSchema(Schema):
    entries = fields.List(fields.Nested(WaitingEntrySchema), attribute="rows", required=True)
    next_after = next_after_field()


class BookingsQuery(Schema):
    status = fields.String(validate=validate.OneOf(BOOKING_STATUSES))
    after = seq_after()
    limit = page_limit_field()


class BookingRowSchema(Schema):
    id = fields.UUID(required=True)
    event_id = fields.UUID(data_key="eventId", required=True)
    user_id = fields.String(data_key="userId", required=True)
    status = fields.String(required=True, validate=validate.OneOf(BOOKING_STATUSES))
    quantity = fields.Integer(required=True)
    created_at = UtcDateTime(data_key="createdAt", required=True)
    updated_at = UtcDateTime(data_key="updatedAt", required=True)
    # The same as a Booking's, so that an organiser sees when each offer or hold ends, why one was
    # cancelled, and what paid for it.
    offer_expires_at = offer_expires_at_field()
    cancel_reason = cancel_reason_field()
    hold_expires_at = hold_expires_at_field()
    payment_reference = payment_reference_field()
    items = booking_items_field("What it holds (or wants) of each ticket type (issue 26)")


class BookingsPageSchema(Schema):
    bookings = fields.List(fields.Nested(BookingRowSchema), attribute="rows", required=True)
    next_after = next_after_field()


class IndexSchema(Schema):
    docs = fields.String(required=True, metadata={"description": "The interactive docs page", "example": "/docs"})
    openapi = fields.String(required=True, metadata={"description": "This document", "example": "/openapi.json"})


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
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={
            "description": "Field-level messages: validation failures, and a quantity over the limit of "
            "the event or of the booking"
        },
    )
    request_id = fields.String(data_key="requestId")
