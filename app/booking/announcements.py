"""Domain events, told once their transaction has committed: one JSON log line and one count each.

The service layer calls these after the commit, so a rolled-back request never logs or counts an
outcome that did not happen.
"""

from __future__ import annotations

import structlog

from app.web import metrics
from app.booking.domain import CONFIRMED, Booking, Cancellation

log = structlog.get_logger("app.booking.announcements")


def booked(booking: Booking) -> None:
    """A booking was made: `booked` with a ticket, or `waitlisted` at a place in the waiting list."""
    if booking.status == CONFIRMED:
        log.info("booked", **_describe(booking))
    else:
        log.info("waitlisted", waiting_position=booking.waiting_position, **_describe(booking))
    metrics.count_booking(booking.status)


def cancelled(cancellation: Cancellation) -> None:
    """A booking was cancelled, and the freed ticket perhaps went to the oldest waiting entry."""
    log.info("cancelled", **_describe(cancellation.booking))
    metrics.count_booking("cancelled")
    if cancellation.promoted is not None:
        log.info("promoted", **_describe(cancellation.promoted))
        metrics.count_booking("promoted")


def _describe(booking: Booking) -> dict:
    # These win over the request's own event_id/user_id: a promotion concerns another user.
    return {"event_id": str(booking.event_id), "user_id": booking.user_id, "booking_id": str(booking.id)}
