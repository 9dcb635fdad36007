"""Committed outcomes, told: one JSON log line and one count each, the one place that tells them.

`announce` is called once a write's transaction has committed, and only then (app/web/idempotency.py,
`perform`, for every way a write runs), so a rolled-back request never logs or counts an outcome that
did not happen, and a replay or a refusal, which changed nothing, tells nothing.
"""

from __future__ import annotations

from functools import singledispatch

import structlog

from app.booking import metrics
from app.booking.domain import (
    CANCELLED,
    CONFIRMED,
    HELD,
    LOBBY,
    OFFERED,
    Booking,
    Cancellation,
    EventCancellation,
    EventUpdate,
    HoldConfirmation,
    OfferAcceptance,
)

log = structlog.get_logger("app.booking.announcements")


@singledispatch
def announce(outcome: object) -> None:
    """Tell what a committed write did; an outcome nobody listens for (an event opened) is not told."""


@announce.register
def _booked(booking: Booking) -> None:
    """A booking was made: `booked` with a ticket (`held` for its payment, with holds on), `waitlisted`
    at a place in the waiting list, or `lobby` before the sale's draw (issue 27)."""
    if booking.status == CONFIRMED:
        log.info("booked", **_describe(booking))
    elif booking.status == HELD:
        log.info("held", hold_expires_at=str(booking.hold_expires_at), **_describe(booking))
    elif booking.status == LOBBY:
        log.info("lobby", quantity=booking.quantity, **_describe(booking))
    else:
        log.info("waitlisted", waiting_position=booking.waiting_position, **_describe(booking))
    metrics.count_booking(booking.status)


@announce.register
def _accepted(acceptance: OfferAcceptance) -> None:
    log.info("accepted", **_describe(acceptance.booking))
    metrics.count_booking("accepted")


@announce.register
def _paid(confirmation: HoldConfirmation) -> None:
    """A hold confirmed by its payment; a repeat of the same confirm changed nothing and tells nothing."""
    if confirmation.repeated:
        return
    log.info("paid", payment_reference=confirmation.booking.payment_reference, **_describe(confirmation.booking))
    metrics.count_booking("paid")


@announce.register
def _cancelled(cancellation: Cancellation) -> None:
    """A booking was cancelled (or only some of its tickets; an offer given up is told by its reason,
    `declined` or `expired`), and the freed tickets perhaps went to waiting entries: each is told and counted."""
    if cancellation.booking.status == CANCELLED:
        outcome = cancellation.booking.cancel_reason or "cancelled"
        log.info(outcome, **_describe(cancellation.booking))
        metrics.count_booking(outcome)
    else:  # a partial cancel: the booking keeps `quantity` tickets
        log.info("reduced", quantity=cancellation.booking.quantity, **_describe(cancellation.booking))
        metrics.count_booking("reduced")
    _promotions(cancellation.promoted_bookings)


@announce.register
def _event_updated(update: EventUpdate) -> None:
    """An organiser changed an event; a capacity raise perhaps confirmed waiting entries."""
    event = update.event
    log.info("event_updated", event_id=str(event.id), total_tickets=event.total_tickets, sales_open=event.sales_open)
    _promotions(update.promoted_bookings)


@announce.register
def _event_cancelled(cancellation: EventCancellation) -> None:
    """An organiser called an event off, cancelling its active bookings; a repeat changed nothing."""
    if cancellation.cancelled_bookings is not None:
        log.info("event_cancelled", event_id=str(cancellation.event.id), bookings=cancellation.cancelled_bookings)
        metrics.count_booking("cancelled", cancellation.cancelled_bookings)


def _promotions(bookings: list[Booking]) -> None:
    """The waiting entries that freed tickets went to: `promoted` (confirmed), `offered` in offer mode, or
    `held` with holds on."""
    for promoted in bookings:
        outcome = promoted.status if promoted.status in (OFFERED, HELD) else "promoted"
        log.info(outcome, quantity=promoted.quantity, **_describe(promoted))
        metrics.count_booking(outcome)


def _describe(booking: Booking) -> dict:
    # These win over the request's own event_id/user_id: a promotion concerns another user.
    return {"event_id": str(booking.event_id), "user_id": booking.user_id, "booking_id": str(booking.id)}
