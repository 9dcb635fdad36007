"""What the service speaks in: events, bookings, and the errors a request can run into."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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


class DomainError(Exception):
    """A request the rules refuse; `code` is the stable name clients see."""

    code = "domain_error"


class EventNotFound(DomainError):
    code = "event_not_found"

    def __init__(self, event_id: str) -> None:
        super().__init__(f"no event with id {event_id!r}")


class BookingNotFound(DomainError):
    code = "booking_not_found"

    def __init__(self, user_id: str) -> None:
        super().__init__(f"{user_id} has no booking for this event")


class AlreadyBooked(DomainError):
    code = "already_booked"

    def __init__(self, user_id: str) -> None:
        super().__init__(f"{user_id} already holds a booking for this event")


class AlreadyCancelled(DomainError):
    code = "already_cancelled"

    def __init__(self, user_id: str) -> None:
        super().__init__(f"{user_id}'s booking for this event is already cancelled")


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was used for another request (method, path or body differ)")


class RequestInProgress(DomainError):
    code = "request_in_progress"

    def __init__(self) -> None:
        super().__init__("a request with this Idempotency-Key is still in progress; retry shortly")


class Unauthorized(DomainError):
    code = "unauthorized"

    def __init__(self) -> None:
        super().__init__("a valid admin bearer token is required")


def parse_event_id(event_id: str) -> UUID:
    """Ids are opaque to clients: one that is not ours, whatever its shape, names no event."""
    try:
        return UUID(event_id)
    except (ValueError, TypeError, AttributeError):
        raise EventNotFound(event_id) from None
