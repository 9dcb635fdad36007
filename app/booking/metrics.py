"""What the core counts (prometheus-client): booking outcomes, once committed.

The core's own counters, as app/notifications/metrics.py holds the dispatcher's: `announce`
(announcements.py) counts, and the web layer's /metrics (app/web/metrics.py) serves whatever the
process registered, without knowing what it is.
"""

from __future__ import annotations

from prometheus_client import Counter

BOOKING_OUTCOMES = (
    "confirmed",
    "waiting",
    "cancelled",
    "reduced",
    "promoted",
    "offered",
    "accepted",
    "declined",
    "expired",
    "held",
    "paid",
    "hold_expired",
    "lobby",
)

BOOKINGS = Counter("bookings_total", "Booking outcomes, counted once committed", ["outcome"])
for _outcome in BOOKING_OUTCOMES:
    BOOKINGS.labels(_outcome)  # every outcome is scraped from the start, at 0


def count_booking(outcome: str, bookings: int = 1) -> None:
    """Count committed booking outcomes: confirmed, waiting, cancelled, reduced (a partial cancel) or promoted;
    in offer mode offered, accepted, declined or expired (an offer cancelled after its time, not yet swept); with
    holds on held, paid or hold_expired (a hold cancelled after its time, not yet swept); before a sale's draw,
    lobby."""
    BOOKINGS.labels(outcome).inc(bookings)
