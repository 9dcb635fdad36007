"""The use cases run straight on an engine, as a worker runs them without an Idempotency-Key: for tests
that set up events and bookings without going through HTTP."""

from __future__ import annotations

from app.booking import services
from app.database.group_commit import Batcher


def open_event(engine, total_tickets: int, name: str | None = None):
    return services.OpenEvent(total_tickets, name).alone(engine, Batcher())


def book(engine, event_id: str, user_id: str):
    return services.BookTicket(event_id, user_id).alone(engine, Batcher())


def cancel(engine, event_id: str, user_id: str):
    return services.CancelBooking(event_id, user_id).alone(engine, Batcher())
