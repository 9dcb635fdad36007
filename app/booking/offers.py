"""The sweeper of offers (issue 16): offers past their time are cancelled as `expired`, and their
tickets offered to the next entries, within seconds of the deadline (app/booking/sweeps.py: how a pass
goes; app/booking/sql/expire_offers.sql: one event's step)."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, text

from app.booking.sweeps import Sweep, Sweeper, sweep

OFFERS = Sweeper(
    "offer_sweep",
    # Events with an offer due, the longest overdue first, along the partial index of offers by deadline
    # (migration 0011): under a backlog, the offers nearest to breaking the 5 s promise go first.
    text("""
SELECT b.event_id FROM bookings b
 WHERE b.status = 'offered' AND b.offer_expires_at <= clock_timestamp()
 GROUP BY b.event_id
 ORDER BY min(b.offer_expires_at)
 LIMIT :limit
"""),
    text("SELECT outcome, expired_offers AS expired, promoted_bookings FROM expire_offers(:event_id, :request_id)"),
)


def sweep_expired_offers(engine: Engine, stop: threading.Event | None = None) -> Sweep:
    """One pass: expire the offers due, offering (or confirming, or holding) their tickets on."""
    return sweep(engine, OFFERS, stop)
