"""`python -m bench.draw` (or `make bench` with BENCH_SCENARIOS=draw): the fair sale opening at scale (issue 27).

1. **The storm.** For STORM_S seconds before an opening, wrk books an event whose sale opens later with a
   new user per request, over STORM_CONNECTIONS connections (gunicorn, as `make bench` serves): the
   contract's storm is 10 000 users in the 5 s before the opening, each answered 201 `lobby`. Measured:
   the lobby entries made in those seconds (from the event's lobbyCount), wrk's errors and latencies, and
   another event's status read meanwhile, against the same reads just before the storm.
   Then the storm's lobby is opened and drawn.
2. **The draw.** An event of DRAW_TICKETS tickets with a lobby of DRAW_ENTRIES entries (1 to 4 tickets
   each, filled in SQL beforehand) opens; one background process (`python -m app.workers`, as `make run`
   starts it) draws it. Measured: from salesOpenAt to drawnAt (the database's clocks), and the latencies of
   the event's status read over HTTP during the draw, by STATUS_READERS readers, each every STATUS_PAUSE_S.
Then `flask check` over both events. Prints one JSON object of results.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import create_engine, text

from app.operations import audit
from bench.database import postgres_server
from bench.load import ensure_wrk, percentiles, start_wrk, wrk_result
from bench.organisers import fresh_database
from bench.server import Gunicorn
from bench.settings import ROOT
from bench.webhooks import DispatcherProcess

DATABASE_NAME = "booking_bench_draw"
DRAW_ENTRIES = int(os.environ.get("BENCH_DRAW_ENTRIES", 100_000))
DRAW_TICKETS = int(os.environ.get("BENCH_DRAW_TICKETS", 20_000))
STORM_S = int(os.environ.get("BENCH_STORM_SECONDS", 5))
STORM_TARGET = 10_000  # users in the lobby within STORM_S seconds
STORM_CONNECTIONS = 64
STATUS_READERS = 4
STATUS_PAUSE_S = 0.02  # between two reads of one reader, as make bench's status streams (BENCH_STATUS_PAUSE_MS)
FILL_BATCH = 1000  # lobby entries per book_many call while filling (one commit each)
GIVE_UP_S = 300

OPEN_EVENT = text("""
INSERT INTO events (name, total_tickets, available_tickets, sales_open_at)
VALUES (:name, :total, :total, :opens) RETURNING id
""")
FILL = text("""
SELECT count(*) FROM book_many(:event_id, ARRAY(SELECT 'user-' || n FROM generate_series(:first, :last) n),
                               ARRAY(SELECT NULL::text FROM generate_series(:first, :last) n),
                               ARRAY(SELECT 1 + n % 4 FROM generate_series(:first, :last) n))
""")
OPEN_AT = text("UPDATE events SET sales_open_at = :opens WHERE id = :event_id")
DRAWN = text("""
SELECT extract(epoch FROM drawn_at - sales_open_at), lobby_count, available_tickets, waiting_count
  FROM events WHERE id = :event_id
""")


def main() -> int:
    with postgres_server(os.environ.get("BENCH_DATABASE_URL")) as server_url:
        results = measure(server_url)
    print(json.dumps(results, indent=2))
    return 0 if results["check"]["ok"] else 1


def measure(server_url: str) -> dict:
    """The storm and the draw on a database of their own on the server, then `flask check` over it."""
    url = fresh_database(server_url, DATABASE_NAME)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    log = ROOT / "instance" / "bench-draw.log"
    log.parent.mkdir(exist_ok=True)
    with (
        Gunicorn("wsgi:app", url, log) as server,
        DispatcherProcess({**os.environ, "DATABASE_URL": url}, engine, log),
    ):
        results = {"storm": storm(engine, server.url), "draw": draw(engine, server.url)}
    report = audit.check(engine)
    results["check"] = {"ok": report.ok, "problems": report.problems[:5]}
    engine.dispose()
    return results


def open_event(engine, name: str, total: int, opens: datetime) -> str:
    with engine.connect() as conn:
        return str(conn.execute(OPEN_EVENT, {"name": name, "total": total, "opens": opens}).scalar_one())


def storm(engine, base_url: str) -> dict:
    """New users booking an event that opens later, for STORM_S seconds; another event's status read meanwhile."""
    other = open_event(engine, "other", 100, datetime.now(UTC))
    baseline = read_status(base_url, other, until=time.monotonic() + 3)
    event = open_event(engine, "storm", DRAW_TICKETS, datetime.now(UTC) + timedelta(days=1))
    reads: list[float] = []
    storming = threading.Event()
    reader = threading.Thread(target=lambda: reads.extend(read_status(base_url, other, stop=storming)))
    reader.start()
    load = start_wrk(ensure_wrk(), base_url, "book_event.lua", [event, "storm"], STORM_CONNECTIONS, 2, STORM_S)
    answered = wrk_result(load)
    storming.set()
    reader.join()
    with engine.connect() as conn:
        in_lobby = conn.execute(text("SELECT lobby_count FROM events WHERE id = :event"), {"event": event}).scalar_one()
    return {
        "seconds": STORM_S,
        "users_in_lobby": in_lobby,
        "target_users": STORM_TARGET,
        "requests_per_s": round(answered["requests_per_s"]),
        "errors": answered["errors"],
        "latency_ms": answered["latency_ms"],
        "storm_lobby_drawn_s": open_and_wait(engine, event),
        "other_status_ms_before": percentiles(baseline),
        "other_status_ms_during": percentiles(reads),
    }


def open_and_wait(engine, event_id: str) -> float | None:
    """Open the event's sale now; the seconds from the opening to its drawnAt, once the background process drew it."""
    deadline = time.monotonic() + GIVE_UP_S
    with engine.connect() as conn:
        conn.execute(OPEN_AT, {"opens": datetime.now(UTC), "event_id": event_id})
        while conn.execute(DRAWN, {"event_id": event_id}).one()[0] is None and time.monotonic() < deadline:
            time.sleep(0.2)  # polling for the end, not ordering anything
        seconds = conn.execute(DRAWN, {"event_id": event_id}).one()[0]
    return None if seconds is None else round(float(seconds), 2)


def read_status(
    base_url: str, event_id: str, until: float = float("inf"), stop: threading.Event | None = None
) -> list[float]:
    """The latencies (ms) of the event's status, read every STATUS_PAUSE_S until `until` (monotonic) or `stop`."""
    latencies = []
    with httpx.Client(base_url=base_url, timeout=30) as client:
        while time.monotonic() < until and not (stop is not None and stop.is_set()):
            started = time.perf_counter()
            client.get(f"/api/status/{event_id}").raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(STATUS_PAUSE_S)  # a reader's pace, not ordering anything
    return latencies


def draw(engine, base_url: str) -> dict:
    """A lobby of DRAW_ENTRIES entries opened now and drawn by the background process; its status read meanwhile."""
    event = open_event(engine, "draw", DRAW_TICKETS, datetime.now(UTC) + timedelta(days=1))
    with engine.connect() as conn:
        for first in range(1, DRAW_ENTRIES + 1, FILL_BATCH):
            conn.execute(FILL, {"event_id": event, "first": first, "last": min(first + FILL_BATCH - 1, DRAW_ENTRIES)})
        conn.execute(text("ANALYZE bookings"))
    reads: list[float] = []
    stop = threading.Event()
    readers = [
        threading.Thread(target=lambda: reads.extend(read_status(base_url, event, stop=stop)))
        for _ in range(STATUS_READERS)
    ]
    for reader in readers:
        reader.start()
    open_and_wait(engine, event)
    stop.set()
    for reader in readers:
        reader.join()
    with engine.connect() as conn:
        seconds, lobby, available, waiting = conn.execute(DRAWN, {"event_id": event}).one()
    return {
        "entries": DRAW_ENTRIES,
        "tickets": DRAW_TICKETS,
        "seconds_from_opening_to_drawn": None if seconds is None else round(float(seconds), 2),
        "left_in_lobby": lobby,
        "available_after": available,
        "waiting_after": waiting,
        "status_ms_during_draw": percentiles(reads),
    }


if __name__ == "__main__":
    raise SystemExit(main())
