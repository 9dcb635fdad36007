"""`python -m bench.organisers`: what an organiser's two big operations cost (docs/organisers.md).

1. Calling off an event of CANCEL_BOOKINGS bookings (half confirmed, half waiting): how long the
   event's row lock is held, what a reader of the event sees meanwhile, and what a booking sent
   meanwhile is told.
2. The CSV export of a waiting list of STREAM_ROWS entries from a gunicorn worker: how long it takes
   and the worker's resident memory, sampled while it streams.

Both against gunicorn as `make run` starts it, on a database of their own on the bench server
(BENCH_DATABASE_URL, else an embedded PostgreSQL). Prints one JSON object of results.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, make_url, text

from bench.database import postgres_server
from bench.server import Gunicorn
from bench.settings import ROOT

DATABASE_NAME = "booking_bench_organisers"
CANCEL_BOOKINGS = int(os.environ.get("BENCH_CANCEL_BOOKINGS", 100_000))
STREAM_ROWS = int(os.environ.get("BENCH_STREAM_ROWS", 1_000_000))
BOOK_BATCH = 1000

OPEN = text("INSERT INTO events (name, total_tickets, available_tickets) VALUES ('bench', :n, :n) RETURNING id")
BOOK_MANY = text("SELECT count(*) FROM book_many(:event_id, :users, :requests)")
# A queue seeded in one statement, its counters set as book_ticket would have left them.
SEED_QUEUE = [
    """INSERT INTO events (name, total_tickets, available_tickets, waiting_count, waiting_tickets,
                           queue_joined_entries, queue_joined_tickets)
       VALUES ('streamed', 1, 0, :rows, :rows, :rows, :rows) RETURNING id""",
    "INSERT INTO bookings (event_id, user_id, status) VALUES (:event_id, 'holder', 'confirmed')",
    """INSERT INTO bookings (event_id, user_id, status, queue_ordinal, queue_tickets_before)
       SELECT :event_id, 'waiter-' || n, 'waiting', n, n - 1 FROM generate_series(1, :rows) AS n""",
]


def main() -> int:
    with postgres_server(os.environ.get("BENCH_DATABASE_URL")) as server_url:
        url = fresh_database(server_url)
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        cancelled_event, queued_event = busy_event(engine), long_queue(engine)
        log = ROOT / "instance" / "bench-organisers.log"
        log.parent.mkdir(exist_ok=True)
        with Gunicorn("wsgi:app", url, log) as server:
            results = {
                "cancel": measure_cancel(server, engine, cancelled_event),
                "stream": measure_stream(server, queued_event),
            }
        engine.dispose()
    print(json.dumps(results, indent=2))
    return 0


def fresh_database(server_url: str, name: str = DATABASE_NAME) -> str:
    """The URL of database `name` on the server, dropped if it was there, created and migrated to head."""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    with engine.begin() as conn:
        alembic_config = AlembicConfig(str(ROOT / "alembic.ini"))
        alembic_config.attributes["connection"] = conn
        command.upgrade(alembic_config, "head")
    engine.dispose()
    return url


def busy_event(engine) -> str:
    """An event of CANCEL_BOOKINGS / 2 tickets, all held, as many entries waiting: booked by the functions."""
    with engine.connect() as conn:
        event_id = conn.execute(OPEN, {"n": CANCEL_BOOKINGS // 2}).scalar_one()
        for start in range(0, CANCEL_BOOKINGS, BOOK_BATCH):
            users = [f"user-{n}" for n in range(start, min(start + BOOK_BATCH, CANCEL_BOOKINGS))]
            conn.execute(BOOK_MANY, {"event_id": event_id, "users": users, "requests": [None] * len(users)})
    return str(event_id)


def long_queue(engine) -> str:
    with engine.connect() as conn:
        event_id = conn.execute(text(SEED_QUEUE[0]), {"rows": STREAM_ROWS}).scalar_one()
        for statement in SEED_QUEUE[1:]:
            conn.execute(text(statement), {"event_id": event_id, "rows": STREAM_ROWS})
    return str(event_id)


def request(server: Gunicorn, method: str, path: str, body: dict | None = None) -> tuple[int, dict, float]:
    """(status, JSON body, seconds) of one request."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {
        "Authorization": f"Bearer {server.env['ADMIN_TOKEN']}",
        **({"Content-Type": "application/json"} if data else {}),
    }
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(
            urllib.request.Request(server.url + path, data, headers, method=method), timeout=600
        ) as r:
            return r.status, json.loads(r.read()), time.perf_counter() - started
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), time.perf_counter() - started


def measure_cancel(server: Gunicorn, engine, event_id: str) -> dict:
    """The cancel's time, with a reader polling the event and a booking sent while it runs."""
    done, reads, booking = threading.Event(), [], {}

    def read_meanwhile() -> None:
        while not done.is_set():
            status, body, seconds = request(server, "GET", f"/api/status/{event_id}")
            reads.append((body["event"]["status"], body["event"]["waitingListCount"], seconds))

    def book_meanwhile() -> None:
        status, body, seconds = request(server, "POST", "/api/book", {"eventId": event_id, "userId": "late"})
        booking.update(status=status, code=body.get("code"), seconds=round(seconds, 3))

    reader = threading.Thread(target=read_meanwhile)
    reader.start()
    cancel = threading.Thread(
        target=lambda: booking.setdefault("cancel", request(server, "POST", f"/api/events/{event_id}/cancel"))
    )
    cancel.start()
    await_statement(engine, "cancel_event")  # the booking goes while the cancel holds the lock
    book_meanwhile()
    cancel.join()
    done.set()
    reader.join()
    status, body, seconds = booking.pop("cancel")
    during = [read for read in reads if read[0] == "active"]
    return {
        "bookings": CANCEL_BOOKINGS,
        "cancel_status": status,
        "cancel_seconds": round(seconds, 3),
        "reads_meanwhile": len(during),
        "reads_saw_before_commit": sorted({(s, w) for s, w, _ in during}),
        "slowest_read_seconds": round(max(s for _, _, s in reads), 3),
        "booking_sent_meanwhile": booking,
    }


RUNNING = text(
    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE :pattern AND pid <> pg_backend_pid()"
)


def await_statement(engine, function: str) -> None:
    """Return once a session runs a statement calling `function`, polling."""
    deadline = time.monotonic() + 60
    with engine.connect() as conn:
        while not conn.execute(RUNNING, {"pattern": f"%{function}(%"}).scalar_one():
            assert time.monotonic() < deadline, f"no session ran {function} within 60 s"
            time.sleep(0.005)  # polling interval, not ordering


def measure_stream(server: Gunicorn, event_id: str) -> dict:
    """The CSV export of STREAM_ROWS waiting entries: seconds, bytes, and the worker's RSS over time."""
    workers = server.processes()[1:]
    before = {worker.pid: worker.memory_info().rss for worker in workers}
    headers = {"Authorization": f"Bearer {server.env['ADMIN_TOKEN']}", "Accept": "text/csv"}
    started, received, samples = time.perf_counter(), 0, []
    with urllib.request.urlopen(
        urllib.request.Request(f"{server.url}/api/events/{event_id}/waiting-list", headers=headers), timeout=600
    ) as response:
        while chunk := response.read(1 << 20):
            received += len(chunk)
            samples.append(max(worker.memory_info().rss - before[worker.pid] for worker in workers))
    mb = [round(sample / 2**20, 1) for sample in samples]
    return {
        "rows": STREAM_ROWS,
        "seconds": round(time.perf_counter() - started, 1),
        "megabytes_sent": round(received / 2**20, 1),
        "worker_rss_growth_mb": {
            "first": mb[0],
            "max": max(mb),
            "last": mb[-1],
            "every_tenth": mb[:: max(1, len(mb) // 10)],
        },
    }


if __name__ == "__main__":
    raise SystemExit(main())
