"""The fair sale opening's draw (issue 27): within seconds of an event's salesOpenAt, its lobby is ranked in a
uniformly random order and booked in that order by the ordinary rules, by the lobby-draw unit of the
background process (app/workers/units.py).

One event's draw is a run of steps, each one statement in autocommit under the event's row lock
(app/booking/sql/draw_lobby.sql): the ranking first, then slices of SLICE entries booked by book_ticket
while tickets remain for them, then slices of QUEUE_SLICE queued at once, until the last rank. Between
two steps the lock is free, so the event's bookings and cancels go on during the draw, and its reads
never wait. Every step reads where the draw stands from the event row, so any
number of processes may draw at once and a process killed mid-draw leaves the next one to go on from the
last committed step.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass

import structlog
from sqlalchemy import Connection, Engine, Row, text
from sqlalchemy.exc import DBAPIError

# Entries booked one by one per step: the event's lock is held for one slice at a time (a few tens of ms
# here), so a booking or a cancel of the event waits that long at most, while the draw pays one commit per
# slice. Once even the smallest booking would wait, entries join the back of the queue QUEUE_SLICE at a
# time, in a few statements (queue_lobby.sql): about as long under the lock as SLICE one by one.
SLICE = 250
QUEUE_SLICE = 2000
EVENTS_PER_PASS = 20  # draws due at once are rare; a longer backlog goes on at the next pass, which follows at once

# The events whose draw is due, the longest overdue first, along the partial index of the openings to come.
DUE = text("""
SELECT e.id FROM events e
 WHERE e.sales_open_at IS NOT NULL AND e.drawn_at IS NULL AND e.sales_open_at <= clock_timestamp()
   AND e.status = 'active' AND e.sales_open
 ORDER BY e.sales_open_at
 LIMIT :limit
""")
STEP = text("SELECT outcome, ranked, seated, finished FROM draw_lobby(:event_id, :request_id, :slice, :queue_slice)")

log = structlog.get_logger("app.booking.lobby")


@dataclass(frozen=True)
class Draws:
    """What a pass did: the lobby entries ranked and booked, the draws finished, those left to a later pass."""

    ranked: int = 0
    seated: int = 0
    finished: int = 0
    busy_events: int = 0  # an event's lock held by another writer for over the step's lock_timeout
    backlog: bool = False


def draw_due_lobbies(engine: Engine, stop: threading.Event | None = None) -> Draws:
    """One pass: draw every lobby that is due, each to its end (unless `stop` is set or its lock stays busy)."""
    database = engine.execution_options(isolation_level="AUTOCOMMIT")
    with database.connect() as conn:
        due = conn.execute(DUE, {"limit": EVENTS_PER_PASS}).scalars().all()
    draws = [draw_lobby(database, event_id, stop) for event_id in due]
    return Draws(
        ranked=sum(draw.ranked for draw in draws),
        seated=sum(draw.seated for draw in draws),
        finished=sum(draw.finished for draw in draws),
        busy_events=sum(draw.busy_events for draw in draws),
        backlog=len(due) == EVENTS_PER_PASS,
    )


def draw_lobby(database: Engine, event_id: uuid.UUID, stop: threading.Event | None = None) -> Draws:
    """Step through one event's draw until it is done, not due (another process finished it), busy, failed
    or `stop` is set; what it did. The ledger entries of the draw share one request id, so that its bookings
    read as one change."""
    request_id = f"draw-{uuid.uuid4()}"
    done = Draws()
    with database.connect() as conn:
        while stop is None or not stop.is_set():
            step = _step(conn, event_id, request_id)
            if step is None:
                break
            finished = step.outcome == "ok" and step.finished
            done = Draws(
                done.ranked + step.ranked, done.seated + step.seated, int(finished), int(step.outcome == "busy")
            )
            if step.outcome != "ok" or step.finished:
                break
    if done.ranked or done.seated or done.finished:
        log.info(
            "lobby_drawn" if done.finished else "lobby_draw_paused",
            event_id=str(event_id),
            ranked=done.ranked,
            seated=done.seated,
        )
    return done


def _step(conn: Connection, event_id: uuid.UUID, request_id: str) -> Row | None:
    """One step of the draw (draw_lobby.sql); None if the database failed it (a later pass goes on)."""
    try:
        parameters = {"event_id": event_id, "request_id": request_id, "slice": SLICE, "queue_slice": QUEUE_SLICE}
        return conn.execute(STEP, parameters).one()
    except DBAPIError as error:
        log.warning("lobby_draw_failed", event_id=str(event_id), error=str(error).splitlines()[0])
        return None
