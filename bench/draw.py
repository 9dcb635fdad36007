"""`python -m bench.draw` (or `make bench` with BENCH_SCENARIOS=draw): the fair sale opening at scale (issue 27).

1. **The storm.** STORM_USERS users book an event whose sale opens later, as fast as STORM_THREADS client
   threads can send them over HTTP (gunicorn, as `make bench` serves): every answer must be a 201 `lobby`.
   The contract's storm is 10 000 in the 5 s before the opening; the seconds it took here say whether this
   machine's server takes them that fast (the opening is moved to the storm's end, so that no answer comes
   after the draw whatever its pace). Meanwhile a reader polls another event's status; its latencies are
   compared with the same reads just before the storm. Then the storm's lobby is opened and drawn.
2. **The draw.** An event of DRAW_TICKETS tickets with a lobby of DRAW_ENTRIES entries (1 to 4 tickets
   each, filled in SQL beforehand) opens; one background process (`python -m app.workers`, as `make run`
   starts it) draws it. Measured: from salesOpenAt to drawnAt (the database's clocks), and the latencies of
   the event's status read over HTTP during the draw, by STATUS_READERS readers.
Then `flask check` over both events. Prints one JSON object of results.
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import create_engine, text

from app.operations import audit
from bench.database import postgres_server
from bench.load import percentiles
from bench.organisers import fresh_database
from bench.server import Gunicorn
from bench.settings import ROOT
from bench.webhooks import DispatcherProcess

DATABASE_NAME = "booking_bench_draw"
DRAW_ENTRIES = int(os.environ.get("BENCH_DRAW_ENTRIES", 100_000))
DRAW_TICKETS = int(os.environ.get("BENCH_DRAW_TICKETS", 20_000))
STORM_USERS = int(os.environ.get("BENCH_STORM_USERS", 10_000))
STORM_THREADS = 32
STATUS_READERS = 4
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
    print(json.dumps(results, indent=2))
    return 0 if report.ok else 1


def open_event(engine, name: str, total: int, opens: datetime) -> str:
    with engine.connect() as conn:
        return str(conn.execute(OPEN_EVENT, {"name": name, "total": total, "opens": opens}).scalar_one())


def storm(engine, base_url: str) -> dict:
    """STORM_USERS bookings in the STORM_S seconds before an opening; another event's status read meanwhile."""
    other = open_event(engine, "other", 100, datetime.now(UTC))
    baseline = read_status(base_url, other, until=time.monotonic() + 3)
    event = open_event(engine, "storm", DRAW_TICKETS, datetime.now(UTC) + timedelta(days=1))
    reads: list[float] = []
    storming = threading.Event()
    reader = threading.Thread(target=lambda: reads.extend(read_status(base_url, other, stop=storming)))
    reader.start()
    started = time.monotonic()
    with ThreadPoolExecutor(STORM_THREADS) as pool:
        answers = list(pool.map(lambda k: book_range(base_url, event, k), range(STORM_THREADS)))
    took = time.monotonic() - started
    storming.set()
    reader.join()
    drawn_s = open_and_wait(engine, event)
    statuses = [status for part in answers for status in part]
    return {
        "storm_lobby_drawn_s": drawn_s,
        "users": STORM_USERS,
        "seconds": round(took, 2),
        "lobby": statuses.count("lobby"),
        "errors": len(statuses) - statuses.count("lobby"),
        "other_status_ms_before": percentiles(baseline),
        "other_status_ms_during": percentiles(reads),
    }


def book_range(base_url: str, event_id: str, part: int) -> list[str]:
    """Book this thread's share of the storm's users; each answer's status (or its error)."""
    found = []
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for user in range(part, STORM_USERS, STORM_THREADS):
            reply = client.post("/api/book", json={"eventId": event_id, "userId": f"storm-{user}"})
            found.append(reply.json()["booking"]["status"] if reply.status_code == 201 else f"HTTP {reply.status_code}")
    return found


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
    """The latencies (ms) of the event's status, read back to back until `until` (monotonic) or `stop`."""
    latencies = []
    with httpx.Client(base_url=base_url, timeout=30) as client:
        while time.monotonic() < until and not (stop is not None and stop.is_set()):
            started = time.perf_counter()
            client.get(f"/api/status/{event_id}").raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
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
