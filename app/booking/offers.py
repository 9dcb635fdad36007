"""The sweeper of offers (issue 16): offers past their time are cancelled as `expired`, and their
tickets offered to the next entries, within seconds of the deadline.

It runs as the `offer-sweep` unit of the background process (app/workers/units.py), in a thread of its
own, a pass a second, and at once again while a pass leaves a backlog. Each event with an offer due is one
`expire_offers` statement in autocommit, under that event's lock (app/booking/sql/expire_offers.sql). It
waits its turn for the lock behind the event's bookings, up to 2 s: skipping a locked row would skip a
hot event nearly every time. So that one hot event's wait does not hold up the others, a pass sweeps
SWEEP_CONNECTIONS events at once, the most overdue first. An event held longer is 'busy' and swept at
the next pass; a second sweep of the same offers, by this process or another, finds nothing to do.
The deadline is the database's clock, as for an accept, so the two agree on who wins.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import structlog
from sqlalchemy import Engine, Row, text
from sqlalchemy.exc import DBAPIError

# Events with an offer due, the longest overdue first, along the partial index of offers by deadline
# (migration 0011): under a backlog, the offers nearest to breaking the 5 s promise go first.
DUE_EVENTS = text("""
SELECT b.event_id FROM bookings b
 WHERE b.status = 'offered' AND b.offer_expires_at <= clock_timestamp()
 GROUP BY b.event_id
 ORDER BY min(b.offer_expires_at)
 LIMIT :limit
""")
EXPIRE = text("SELECT * FROM expire_offers(:event_id, :request_id)")
EVENTS_PER_PASS = 100  # a backlog of more is swept by the next pass, which follows at once
# Events swept at once, each on a connection of its own (the dispatcher's engine has room for them).
SWEEP_CONNECTIONS = 4

log = structlog.get_logger("app.booking.offers")


@dataclass(frozen=True)
class Sweep:
    expired_offers: int = 0
    promoted_bookings: int = 0  # offered (or confirmed) the tickets that expired offers held
    busy_events: int = 0  # locked by another writer for over the sweeper's lock_timeout: swept at a later pass
    backlog: bool = False  # more events had offers due than one pass takes, and the pass got on with them


def sweep_expired_offers(engine: Engine, stop: threading.Event | None = None) -> Sweep:
    """One pass: expire the offers due at up to EVENTS_PER_PASS events; what it did. The ledger entries
    of one event's sweep share a request id of their own, so its expiries and the offers they led to read
    as one change. Once `stop` is set, the events not yet begun are left to the next dispatcher."""
    database = engine.execution_options(isolation_level="AUTOCOMMIT")
    with database.connect() as conn:
        due = conn.execute(DUE_EVENTS, {"limit": EVENTS_PER_PASS}).scalars().all()
    if not due:
        return Sweep()
    with ThreadPoolExecutor(min(SWEEP_CONNECTIONS, len(due)), thread_name_prefix="offer-sweep") as pool:
        rows = [row for row in pool.map(lambda event_id: _expire(database, event_id, stop), due) if row is not None]
    expired = sum(row.expired_offers for row in rows)
    return Sweep(
        expired_offers=expired,
        promoted_bookings=sum(row.promoted_bookings for row in rows),
        busy_events=sum(row.outcome == "busy" for row in rows),
        backlog=len(due) == EVENTS_PER_PASS and expired > 0,  # else the next pass would find the same
    )


def _expire(database: Engine, event_id: uuid.UUID, stop: threading.Event | None) -> Row | None:
    """expire_offers' row for one event; None if stopping, or if the database failed it (the next pass
    tries again; the other events of the pass go on)."""
    if stop is not None and stop.is_set():
        return None
    try:
        with database.connect() as conn:
            return conn.execute(EXPIRE, {"event_id": event_id, "request_id": f"sweep-{uuid.uuid4()}"}).one()
    except DBAPIError as error:
        log.warning("offer_sweep_failed", event_id=str(event_id), error=str(error).splitlines()[0])
        return None
