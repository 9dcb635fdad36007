"""`python -m bench.dispatch_drain`: how fast one dispatcher drains a backlog, and what each message costs.

MESSAGES bookings of one event are made with a webhook registered and no dispatcher running, so the
outbox holds one booking.confirmed per booking; then one dispatcher (`python -m app.workers`,
as `make run` starts it, default settings) sends them all to a receiver on loopback that answers 204 at
once (bench/webhooks.py's). Reported: the messages per second, and the CPU per message of the
dispatcher and of PostgreSQL (when it runs on this machine), with nothing else running: what the
dispatcher takes from a hot sale's two cores for each message it sends.

On a database of its own on the bench server (BENCH_DATABASE_URL, else an embedded PostgreSQL);
BENCH_DRAIN_MESSAGES changes the backlog. Prints one JSON object of results.
"""

from __future__ import annotations

import json
import os
import time

import psutil
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from app.booking.services import write
from app.notifications.service import RegisterWebhook, Registration
from bench.database import postgres_server
from bench.load import own_cpu, postmaster_pid, tree_cpu
from bench.organisers import fresh_database
from bench.settings import ROOT
from bench.webhooks import DispatcherProcess, Receiver

DATABASE_NAME = "booking_bench_dispatch_drain"
MESSAGES = int(os.environ.get("BENCH_DRAIN_MESSAGES", 20000))
CHUNK = 500
GIVE_UP_S = 300
POLL_S = 0.1

OPEN = text("INSERT INTO events (name, total_tickets, available_tickets) VALUES ('drain', :n, :n) RETURNING id")
BOOK_MANY = text("""
SELECT count(*) FROM book_many(:event_id, ARRAY(SELECT 'user-' || n FROM generate_series(:first, :last) n),
                               array_fill(NULL::text, ARRAY[:last - :first + 1]))
""")
PENDING = text("SELECT count(*) FROM webhook_messages WHERE state = 'pending'")
OUTCOMES = text(
    "SELECT count(*) FILTER (WHERE state = 'delivered'), count(*) FILTER (WHERE attempts > 1) FROM webhook_messages"
)


def main() -> int:
    key = Fernet.generate_key().decode()
    with postgres_server(os.environ.get("BENCH_DATABASE_URL")) as server_url, Receiver() as receiver:
        url = fresh_database(server_url, DATABASE_NAME)
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        event_id = backlog(engine, Registration((key,), allow_private=True), receiver.url)
        env = {**os.environ, "DATABASE_URL": url, "WEBHOOK_SECRET_KEY": key, "WEBHOOK_ALLOW_PRIVATE": "true"}
        log = ROOT / "instance" / "bench-dispatch-drain.log"
        log.parent.mkdir(exist_ok=True)
        postmaster = postmaster_pid(engine)
        with DispatcherProcess(env, engine, log) as dispatcher:
            results = measure(engine, dispatcher, receiver, postmaster)
        results["event_id"] = str(event_id)
        engine.dispose()
    print(json.dumps(results, indent=2))
    return 0


def backlog(engine, registration: Registration, receiver_url: str):
    """One event with a webhook to the receiver, and MESSAGES bookings of it: as many messages pending."""
    with engine.connect() as conn:
        event_id = conn.execute(OPEN, {"n": MESSAGES}).scalar_one()
    write(engine, RegisterWebhook(registration, receiver_url, event_id=str(event_id)))
    with engine.connect() as conn:
        for first in range(1, MESSAGES + 1, CHUNK):
            conn.execute(BOOK_MANY, {"event_id": event_id, "first": first, "last": min(first + CHUNK - 1, MESSAGES)})
    return event_id


def measure(engine, dispatcher: DispatcherProcess, receiver: Receiver, postmaster: int | None) -> dict:
    """From the dispatcher's first heartbeat until nothing is pending (or GIVE_UP_S): rates and CPU of
    the messages sent meanwhile (its start-up's CPU and first sends are left out)."""
    own = psutil.Process()
    start = time.monotonic(), dispatcher.cpu_seconds(), tree_cpu(postmaster), own_cpu(own), receiver.counts()[0]
    deadline = start[0] + GIVE_UP_S
    with engine.connect() as conn:
        while conn.execute(PENDING).scalar_one() and time.monotonic() < deadline:
            time.sleep(POLL_S)  # polling for the end, not ordering anything
        delivered, retried = conn.execute(OUTCOMES).one()
    received, distinct = receiver.counts()
    end = time.monotonic(), dispatcher.cpu_seconds(), tree_cpu(postmaster), own_cpu(own), received
    seconds, sent = end[0] - start[0], end[4] - start[4]  # sent since the first heartbeat
    per_message = 1000 / max(sent, 1)
    return {
        "messages": MESSAGES,
        "delivered": delivered,
        "retried": retried,
        "duplicates": received - distinct,
        "drain_s": round(seconds, 2),
        "messages_per_s": round(sent / seconds, 1),
        "cpu_ms_per_message": {
            "dispatcher": round((end[1] - start[1]) * per_message, 3),
            "postgres": round((end[2] - start[2]) * per_message, 3) if postmaster else None,
            "receiver": round((end[3] - start[3]) * per_message, 3),
        },
    }


if __name__ == "__main__":
    raise SystemExit(main())
