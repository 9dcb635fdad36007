"""The sweeper of checkout holds (issue 25): holds past their time are cancelled as `hold_expired`, and
their tickets go to the next entries by the FIFO rule (held again, or offered in offer mode), within
seconds of the deadline (app/booking/sweeps.py: how a pass goes; app/booking/sql/expire_holds.sql: one
event's step)."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, text

from app.booking.sweeps import Sweep, Sweeper, sweep

HOLDS = Sweeper(
    "hold_sweep",
    # Events with a hold due, the longest overdue first, along the partial index of holds by deadline
    # (migration 0018): under a backlog, the holds nearest to breaking the 5 s promise go first.
    text("""
SELECT b.event_id FROM bookings b
 WHERE b.status = 'held' AND b.hold_expires_at <= clock_timestamp()
 GROUP BY b.event_id
 ORDER BY min(b.hold_expires_at)
 LIMIT :limit
"""),
    text("SELECT outcome, expired_holds AS expired, promoted_bookings FROM expire_holds(:event_id, :request_id)"),
)


def sweep_expired_holds(engine: Engine, stop: threading.Event | None = None) -> Sweep:
    """One pass: expire the holds due, passing their tickets on by the FIFO rule."""
    return sweep(engine, HOLDS, stop)
