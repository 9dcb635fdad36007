"""What the service speaks in: events, bookings, and the refusals of the booking rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar
from uuid import UUID

CONFIRMED = "confirmed"
WAITING = "waiting"
CANCELLED = "cancelled"
OFFERED = "offered"  # its tickets held for it until offer_expires_at (issue 16)
HELD = "held"  # its tickets taken, waiting for the payment's confirm until hold_expires_at (issue 25)
LOBBY = "lobby"  # in the lobby of an event whose sale opens with a draw: no tickets, no place yet (issue 27)
DEFAULT_MAX_PER_BOOKING = 10  # an event's maxPerBooking unless it says otherwise (as the column's default)
# An event's status: it runs, or its organiser called it off (every booking cancelled, no more writes).
ACTIVE = "active"
# How the head of the queue gets a freed ticket: confirmed at once, or offered for a limited time.
AUTO, OFFER = "auto", "offer"
DEFAULT_OFFER_TTL_SECONDS = 86_400  # as the column's default
# An event's limits, as the events table's CHECK constraints state them; the request schemas refuse beyond.
MAX_TOTAL_TICKETS = 1_000_000
MAX_PER_BOOKING = 100  # the most an event may allow per booking (its maxPerBooking), so the most one booking holds
MAX_OFFER_TTL_SECONDS = 604_800  # a week
MAX_HOLD_TTL_SECONDS = 86_400  # a day
# EventChanges.hold_ttl_seconds that turns holds off (update_event's argument: None leaves the setting).
HOLDS_OFF = 0
# EventChanges.sales_open_at that clears the opening (update_event's argument, a timestamptz: None leaves it).
OPENING_CLEARED = "-infinity"
# Ticket types (issue 26), as ticket_types' CHECK constraints state them.
STANDARD = "standard"  # the one type of an event opened without types of its own
MAX_TICKET_TYPES = 20  # an event's types, and a booking's items
TICKET_TYPE_CODE = r"^[a-z0-9][a-z0-9-]{0,31}$"


@dataclass(frozen=True)
class TicketType:
    """One kind of ticket of an event, as its replies show it: `available_tickets` is the type's own room
    (its total less what its bookings hold); the event's available_tickets bounds all types together."""

    code: str
    name: str | None
    total_tickets: int
    max_per_booking: int  # its own, else the event's
    available_tickets: int
    waiting_tickets: int = 0


@dataclass(frozen=True)
class TicketTypeChange:
    """A type to add (a new code: total_tickets required) or change, at an initialize or a PATCH; None
    leaves a setting as it is (or, for a new type, max_per_booking: the event's)."""

    code: str
    name: str | None = None
    total_tickets: int | None = None
    max_per_booking: int | None = None


@dataclass(frozen=True)
class BookingItem:
    """Tickets of one type in a booking; while it waits, the tickets of that type wanted ahead of it."""

    ticket_type: str
    quantity: int
    tickets_ahead: int | None = None


# A booking's items as a request names them: (code, quantity) pairs, one per type.
Items = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Event:
    id: UUID
    name: str | None
    total_tickets: int
    available_tickets: int
    waiting_count: int
    created_at: datetime
    updated_at: datetime
    max_per_booking: int = DEFAULT_MAX_PER_BOOKING  # the most tickets one booking may hold
    waiting_tickets: int = 0  # the tickets wanted by all waiting entries
    status: str = ACTIVE
    sales_open: bool = True
    promotion: str = AUTO
    offer_ttl_seconds: int = DEFAULT_OFFER_TTL_SECONDS
    hold_ttl_seconds: int | None = None  # how long a booking that gets tickets waits for its payment; None: no holds
    held_tickets: int = 0  # the tickets in held bookings
    ticket_types: tuple[TicketType, ...] = ()  # by position, the order they were added
    # The fair sale opening (issue 27): when the lobby is drawn (None: no lobby), the entries in it now,
    # and when the draw was done (every entry booked).
    sales_open_at: datetime | None = None
    lobby_count: int = 0
    drawn_at: datetime | None = None

    @property
    def booked_tickets(self) -> int:
        return self.total_tickets - self.available_tickets


@dataclass(frozen=True)
class Booking:
    id: UUID
    event_id: UUID
    user_id: str
    status: str
    waiting_position: int | None
    created_at: datetime
    updated_at: datetime
    quantity: int = 1  # tickets held (or wanted, while waiting), all or none
    tickets_ahead: int | None = None  # while waiting: the tickets wanted by the entries ahead
    offer_expires_at: datetime | None = None  # once offered: when the offer ends (kept once it has)
    cancel_reason: str | None = None  # a cancelled offer's (declined or expired), or a hold's (hold_expired)
    hold_expires_at: datetime | None = None  # once held: when the hold ends (kept once it has)
    payment_reference: str | None = None  # the reference its confirm gave, if any
    items: tuple[BookingItem, ...] | None = None  # its tickets by type (None: not known to the one who read it)
    lobby_rank: int | None = None  # its rank in the draw, once the draw booked it (issue 27)


def items_of(
    codes: list[str] | None,
    quantities: list[int] | None,
    aheads: list[int] | None = None,
    *,
    first_code: str | None = None,
    quantity: int = 0,
    tickets_ahead: int | None = None,
) -> tuple[BookingItem, ...] | None:
    """A booking's items from its rows' arrays; without them (an event of one type) its one item, of that
    type (`first_code`), holding its `quantity`, with its `tickets_ahead`."""
    if codes is None:
        return None if first_code is None else (BookingItem(first_code, quantity, tickets_ahead),)
    aheads = aheads or [None] * len(codes)
    return tuple(BookingItem(*item) for item in zip(codes, quantities, aheads, strict=True))


@dataclass(frozen=True)
class Cancellation:
    """A cancel, whole or partial: the booking as it is now, and every booking that the freed tickets
    confirmed, oldest first (strict FIFO: app/booking/sql/promote_waiting.sql)."""

    booking: Booking
    promoted_bookings: list[Booking]

    @property
    def promoted(self) -> Booking | None:
        """The first promoted booking: v1's one `promoted`, for the clients that know no other."""
        return self.promoted_bookings[0] if self.promoted_bookings else None


@dataclass(frozen=True)
class OfferAcceptance:
    """An offer accepted: the booking, confirmed now (its offerExpiresAt says until when the offer held)."""

    booking: Booking


@dataclass(frozen=True)
class HoldConfirmation:
    """A hold paid for: the booking, confirmed now, or by an earlier confirm with the same reference (`repeated`)."""

    booking: Booking
    repeated: bool = False


@dataclass(frozen=True)
class EventChanges:
    """What an organiser may change of an event; None leaves a setting as it is."""

    name: str | None = None
    total_tickets: int | None = None
    max_per_booking: int | None = None
    sales_open: bool | None = None
    promotion: str | None = None
    offer_ttl_seconds: int | None = None
    hold_ttl_seconds: int | None = None  # HOLDS_OFF turns holds off
    ticket_types: tuple[TicketTypeChange, ...] | None = None  # to add (a new code) or change
    sales_open_at: datetime | str | None = None  # OPENING_CLEARED clears it


@dataclass(frozen=True)
class EventUpdate:
    event: Event
    promoted_bookings: list[Booking]  # confirmed (or offered) by a capacity raise, oldest first


@dataclass(frozen=True)
class EventCancellation:
    event: Event
    cancelled_bookings: int | None  # how many were active; None if it was already cancelled (nothing changed)


@dataclass(frozen=True)
class EventsPage:
    events: list[Event]
    next_after: int | None  # the last event's seq, for the next page; None on the last page


@dataclass(frozen=True)
class WaitingEntry:
    """A waiting booking as its organiser sees it: its place, and the tickets wanted ahead of it."""

    id: UUID
    user_id: str
    quantity: int
    position: int
    tickets_ahead: int
    created_at: datetime
    items: tuple[BookingItem, ...] | None = None  # ticket types (issue 26): each with the tickets of its type ahead


@dataclass(frozen=True)
class BookingRow:
    """A booking of any status, as the organiser's list shows it (places are in the waiting list)."""

    id: UUID
    event_id: UUID
    user_id: str
    status: str
    quantity: int
    created_at: datetime
    updated_at: datetime
    offer_expires_at: datetime | None = None  # offers (issue 16): when the offer ends, or ended
    cancel_reason: str | None = None  # an offer's (declined or expired), or a hold's (hold_expired)
    hold_expires_at: datetime | None = None  # holds (issue 25): when the hold ends, or ended
    payment_reference: str | None = None
    items: tuple[BookingItem, ...] | None = None  # ticket types (issue 26): what it holds (or wants) of each


@dataclass(frozen=True)
class Page:
    """Rows after a cursor, in order; `next_after` (a booking's seq) for the next page, None on the last."""

    rows: list
    next_after: int | None


@dataclass(frozen=True)
class LedgerEntry:
    """One state change, as the ledger (booking_events) recorded it: of a booking, or an organiser's
    change of the event (event_updated, capacity_changed, type_added, type_changed, sales_closed,
    sales_opened, event_cancelled: no booking)."""

    seq: int
    # booked, waitlisted, cancelled, reduced (a partial cancel), promoted, an offer's (offered, accepted,
    # declined, expired), a hold's (held, paid, hold_expired), a lobby's (lobby, lobby_drawn), or an organiser's kind
    kind: str
    booking_id: UUID | None
    user_id: str | None
    request_id: str | None
    created_at: datetime
    quantity: int | None  # the tickets the change concerns: booked, released, or confirmed; None for an organiser's
    total_tickets_from: int | None = None  # capacity_changed, type_added and type_changed only
    total_tickets_to: int | None = None
    items: tuple[BookingItem, ...] | None = None  # a booking's change (issue 26): the tickets of each type it concerns
    ticket_type: str | None = None  # type_added and type_changed: the type's code
    lobby_rank: int | None = None  # on the entry that books a lobby entry drawn (issue 27)


@dataclass(frozen=True)
class HistoryPage:
    entries: list[LedgerEntry]
    next_after: int | None  # pass as `after` for the next page; None on the last page


@dataclass(frozen=True)
class UserBookingsPage:
    bookings: list[Booking]
    next_after: int | None  # pass as `after` for the next (older) page; None on the last page


class Refusal(Exception):
    """A final answer that refuses a request. Each subclass is one kind of refusal and says everything
    about it: its stable `code` (what clients see), its HTTP `status` and `headers`; the exception's
    text is the problem's `detail`. app/web/errors.py renders every one the same way."""

    code: ClassVar[str]
    status: ClassVar[int]
    headers: ClassVar[dict[str, str]] = {}
    kinds: ClassVar[list[type[Refusal]]] = []  # every refusal with a code, in order of definition

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            Refusal.kinds.append(cls)

    def field_errors(self) -> dict[str, list[str]] | None:
        """The request fields at fault, with their messages, for the problem's `errors`; None: no field."""
        return None


class DomainError(Refusal):
    """A request the booking rules refuse. It concerns one of the request's values, `about`
    (event_id or user_id), which `detail` quotes, cut to QUOTED_LENGTH."""

    about: ClassVar[str]
    detail: ClassVar[str]

    def __init__(self, value: object) -> None:
        super().__init__(self.detail.format(quoted(value)))


class EventNotFound(DomainError):
    code, status, about, detail = "event_not_found", 404, "event_id", "no event with id {!r}"


class BookingNotFound(DomainError):
    code, status, about, detail = "booking_not_found", 404, "user_id", "{} has no booking for this event"


class AlreadyBooked(DomainError):
    code, status, about, detail = "already_booked", 409, "user_id", "{} already holds a booking for this event"


class AlreadyCancelled(DomainError):
    code, status, about = "already_cancelled", 409, "user_id"
    detail = "{}'s booking for this event is already cancelled"


class EventCancelled(DomainError):
    code, status, about, detail = (
        "event_cancelled",
        409,
        "event_id",
        "event {!r} is cancelled: it takes no more changes",
    )


class SalesClosed(DomainError):
    code, status, about, detail = "sales_closed", 409, "event_id", "sales for event {!r} are closed"


class CapacityBelowBooked(DomainError):
    code, status, about = "capacity_below_booked", 409, "total_tickets"
    detail = "totalTickets {} is below the tickets already held"


class CapacityBelowWaiting(DomainError):
    code, status, about = "capacity_below_waiting", 409, "total_tickets"
    detail = "totalTickets {} is below a waiting entry's quantity, which could then never be confirmed"


class NoOffer(DomainError):
    code, status, about, detail = "no_offer", 409, "user_id", "{} holds no offer for this event"


class OfferExpired(DomainError):
    code, status, about, detail = "offer_expired", 409, "user_id", "{}'s offer for this event has expired"


class NoHold(DomainError):
    code, status, about, detail = "no_hold", 409, "user_id", "{} holds no booking waiting for its payment at this event"


class HoldExpired(DomainError):
    code, status, about, detail = "hold_expired", 409, "user_id", "{}'s hold for this event has expired"


class AlreadyConfirmed(DomainError):
    code, status, about = "already_confirmed", 409, "user_id"
    detail = "{}'s booking for this event was confirmed with another paymentReference"


class DrawStarted(DomainError):
    code, status, about, detail = (
        "draw_started",
        409,
        "event_id",
        "the draw of event {!r}'s lobby has started: its salesOpenAt can no longer move",
    )


class InvalidQuantity(DomainError):
    """A quantity that the event's limits, known only in the database, refuse: a 400 like the schema's
    own, the message under `errors.quantity`."""

    code, status, about = "invalid_request", 400, "quantity"

    def field_errors(self) -> dict[str, list[str]]:
        return {"quantity": [str(self)]}


class QuantityAboveLimit(InvalidQuantity):
    # More than totalTickets could never be confirmed, and would block the queue for ever.
    detail = "{} tickets is more than this event allows per booking (maxPerBooking) or has (totalTickets)"


class QuantityAboveHeld(InvalidQuantity):
    detail = "{} tickets is more than this booking holds"


class InvalidItems(DomainError):
    """Items that the event's types, known only in the database, refuse: a 400 like the schema's own, the
    message under `errors.items`."""

    code, status, about = "invalid_request", 400, "items"

    def __init__(self, value: object) -> None:
        super().__init__(items_text(value))

    def field_errors(self) -> dict[str, list[str]]:
        return {"items": [str(self)]}


def items_text(items: object) -> str:
    """Items as an error quotes them: `2 adult, 1 child` (cut like any value a client sent)."""
    if not items:
        return "a bare quantity"
    return quoted(", ".join(f"{quantity} {code}" for code, quantity in items))


class ItemsRequired(InvalidItems):
    detail = "{} is not enough on an event of several ticket types: name the items (ticketType, quantity)"


class UnknownTicketType(InvalidItems):
    detail = "{} names a ticket type this event does not have"


class ItemsAboveLimit(InvalidItems):
    detail = (
        "{} is more than this event allows per booking (maxPerBooking, of the event or of a type) or has "
        "(totalTickets, of the event or of a type)"
    )


class ItemsAboveHeld(InvalidItems):
    detail = "{} is more than this booking holds of those types"


class InvalidTicketTypes(DomainError):
    """Ticket types that the event, known only in the database, refuses: 400 with `errors.ticketTypes`."""

    code, status, about = "invalid_request", 400, "ticket_types"

    def __init__(self, value: object) -> None:
        super().__init__(", ".join(change.code for change in value or ()))

    def field_errors(self) -> dict[str, list[str]]:
        return {"ticketTypes": [str(self)]}


class TicketTypeAboveEvent(InvalidTicketTypes):
    detail = "a ticket type's totalTickets may not exceed the event's (types: {})"


class TooManyTicketTypes(InvalidTicketTypes):
    detail = f"an event has at most {MAX_TICKET_TYPES} ticket types (asked: {{}})"


class TicketTypeTotalRequired(InvalidTicketTypes):
    detail = "a new ticket type needs its totalTickets (types: {})"


class LoneTypeMismatch(InvalidTicketTypes):
    detail = (
        "with one ticket type, its totalTickets and maxPerBooking are the event's: give the same values, "
        "or one of them (types: {})"
    )


# The `outcome` column of the booking and organiser functions: "ok", or the refusal it names.
OK = "ok"
REFUSALS: dict[str, type[DomainError]] = {
    "event_not_found": EventNotFound,
    "booking_not_found": BookingNotFound,
    "already_booked": AlreadyBooked,
    "already_cancelled": AlreadyCancelled,
    "quantity_above_limit": QuantityAboveLimit,
    "quantity_above_held": QuantityAboveHeld,
    "event_cancelled": EventCancelled,
    "sales_closed": SalesClosed,
    "capacity_below_booked": CapacityBelowBooked,
    "capacity_below_waiting": CapacityBelowWaiting,
    "no_offer": NoOffer,
    "offer_expired": OfferExpired,
    "no_hold": NoHold,
    "hold_expired": HoldExpired,
    "already_confirmed": AlreadyConfirmed,
    "items_required": ItemsRequired,
    "unknown_ticket_type": UnknownTicketType,
    "items_above_limit": ItemsAboveLimit,
    "items_above_held": ItemsAboveHeld,
    "ticket_type_above_event": TicketTypeAboveEvent,
    "too_many_ticket_types": TooManyTicketTypes,
    "ticket_type_total_required": TicketTypeTotalRequired,
    "lone_type_mismatch": LoneTypeMismatch,
    "draw_started": DrawStarted,
}

# An error quotes at most this much of a value the client sent: a refusal may be stored with an
# Idempotency-Key for a day, and the client, not the service, chose how long the value is.
QUOTED_LENGTH = 64
CUT = "\u2026"  # the ellipsis that ends a value cut short


def quoted(value: object) -> object:
    """`value` as an error may quote it: whole if short, else its first QUOTED_LENGTH characters and CUT."""
    if isinstance(value, str) and len(value) > QUOTED_LENGTH:
        return value[:QUOTED_LENGTH] + CUT
    return value


def raise_unless_ok(outcome: str, **request: object) -> None:
    """Raise the refusal that a database function's `outcome` names, quoting the request's value it is
    about (`request` holds them by name: event_id, user_id, quantity, total_tickets, items, ticket_types)."""
    if outcome != OK:
        refusal = REFUSALS[outcome]
        raise refusal(request[refusal.about])


def parse_event_id(event_id: str) -> UUID:
    """Ids are opaque to clients: one that is not ours, whatever its shape, names no event."""
    try:
        return UUID(event_id)
    except (ValueError, TypeError, AttributeError):
        raise EventNotFound(event_id) from None
