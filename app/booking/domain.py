"""What the service speaks in: events, bookings, and the refusals of the booking rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar
from uuid import UUID

CONFIRMED = "confirmed"
WAITING = "waiting"
CANCELLED = "cancelled"


@dataclass(frozen=True)
class Event:
    id: UUID
    name: str | None
    total_tickets: int
    available_tickets: int
    waiting_count: int
    created_at: datetime
    updated_at: datetime

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


@dataclass(frozen=True)
class Cancellation:
    booking: Booking
    promoted: Booking | None


@dataclass(frozen=True)
class LedgerEntry:
    """One state change of a booking, as the ledger (booking_events) recorded it."""

    seq: int
    kind: str  # booked, waitlisted, cancelled or promoted
    booking_id: UUID
    user_id: str
    request_id: str | None
    created_at: datetime


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


# The `outcome` column of book_ticket, book_many and cancel_booking: "ok", or the refusal it names.
OK = "ok"
REFUSALS: dict[str, type[DomainError]] = {
    "event_not_found": EventNotFound,
    "booking_not_found": BookingNotFound,
    "already_booked": AlreadyBooked,
    "already_cancelled": AlreadyCancelled,
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


def raise_unless_ok(outcome: str, event_id: str, user_id: str) -> None:
    """Raise the refusal that a booking function's `outcome` names, quoting the value it is about."""
    if outcome != OK:
        refusal = REFUSALS[outcome]
        raise refusal({"event_id": event_id, "user_id": user_id}[refusal.about])


def parse_event_id(event_id: str) -> UUID:
    """Ids are opaque to clients: one that is not ours, whatever its shape, names no event."""
    try:
        return UUID(event_id)
    except (ValueError, TypeError, AttributeError):
        raise EventNotFound(event_id) from None
