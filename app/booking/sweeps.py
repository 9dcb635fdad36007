"""The sweepers' one pass: what is past its deadline is expired, event by event, within seconds of it.

Offers (app/booking/offers.py, issue 16) and checkout holds (app/booking/holds.py, issue 25) are swept
the same way, each by a unit of the background process (app/workers/units.py), a pass a second, and at
once again while a pass leaves a backlog. Each event with something due is one statement in autocommit
(expire_offers.sql, expire_holds.sql), under that event's lock. It waits its turn for the lock behind the
event's bookings, up to 2 s: skipping a locked row would skip a hot event nearly every time. So that one
hot event's wait does not hold up the others, a pass sweeps SWEEP_CONNECTIONS events at once, the most
overdue first. An event held longer is 'busy' and swept at the next pass; a second sweep of the same
rows, by this process or another, finds nothing to do. The deadline is the database's clock, as for an
accept or a confirm, so the two agree on who wins.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import structlog
from sqlalchemy import Engine, Row, TextClause
from sqlalchemy.exc import DBAPIError

EVENTS_PER_PASS = 100  # a backlog of more is swept by the next pass, which follows at once
# Events swept at once, each on a connection of its own (the background process's engine has room for them).
SWEEP_CONNECTIONS = 4

log = structlog.get_logger("app.booking.sweeps")


@dataclass(frozen=True)
class Sweeper:
    """What one sweeper expires: `due_events`, the events with something due, the longest overdue first
    (`:limit` of them); `expire`, one event's step (`:event_id`, `:request_id`), whose row is (outcome,
    expired, promoted_bookings)."""

    name: str
    due_events: TextClause
    expire: TextClause


@dataclass(frozen=True)
class Sweep:
    expired: int = 0
    promoted_bookings: int = 0  # given the tickets that the expired ones held
    busy_events: int = 0  # locked by another writer for over the sweeper's lock_timeout: swept at a later pass
    backlog: bool = False  # more events had something due than one pass takes, and the pass got on with them


def sweep(engine: Engine, sweeper: Sweeper, stop: threading.Event | None = None) -> Sweep:
    """One pass: expire what is due at up to EVENTS_PER_PASS events; what it did. The ledger entries of one
    event's sweep share a request id of their own, so its expiries and the promotions they led to read as
    one change. Once `stop` is set, the events not yet begun are left to the next process."""
    database = engine.execution_options(isolation_level="AUTOCOMMIT")
    with database.connect() as conn:
        due = conn.execute(sweeper.due_events, {"limit": EVENTS_PER_PASS}).scalars().all()
    if not due:
        return Sweep()
    with ThreadPoolExecutor(min(SWEEP_CONNECTIONS, len(due)), thread_name_prefix=sweeper.name) as pool:
        rows = pool.map(lambda event_id: _expire(database, sweeper, event_id, stop), due)
        rows = [row for row in rows if row is not None]
    expired = sum(row.expired for row in rows)
    return Sweep(
        expired=expired,
        promoted_bookings=sum(row.promoted_bookings for row in rows),
        busy_events=sum(row.outcome == "busy" for row in rows),
        backlog=len(due) == EVENTS_PER_PASS and expired > 0,  # else the next pass would find the same
    )


def _expire(database: Engine, sweeper: Sweeper, event_id: uuid.UUID, stop: threading.Event | None) -> Row | None:
    """The sweeper's row for one event; None if stopping, or if the database failed it (the next pass
    tries again; the other events of the pass go on)."""
    if stop is not None and stop.is_set():
        return None
    try:
        with database.connect() as conn:
            return conn.execute(sweeper.expire, {"event_id": event_id, "request_id": f"sweep-{uuid.uuid4()}"}).one()
    except DBAPIError as error:
        log.warning(f"{sweeper.name}_failed", event_id=str(event_id), error=str(error).splitlines()[0])
        return None
