"""`python -m bench.offer_lag`: how late the sweeper expires offers on a hot event (issue 16, docs/performance.md).

One event in offer mode (offers of OFFER_TTL_S), its TICKETS held, under wrk's bookings of new users
(each one takes the event's row lock to join the waiting list), while a client cancels one holder every
CANCEL_EVERY_S: each cancel starts a chain of offers that nobody accepts, each expiring OFFER_TTL_S
after it was made and passing the ticket to the next entry. The lag of an expiry is its ledger entry's
time less the booking's offer_expires_at (both the database's clock); an offer still held past its time
is sampled as it goes, so that one the sweeper never reaches counts too. The contract promises 5 s.

Against gunicorn as `make run` starts it, and one dispatcher (`python -m app.workers`),
on a database of their own on the bench server (BENCH_DATABASE_URL, else an embedded PostgreSQL).
Prints one JSON object of results.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.request

from sqlalchemy import create_engine, text

from bench.database import postgres_server
from bench.load import ensure_wrk, start_wrk, wrk_result
from bench.organisers import fresh_database
from bench.server import Gunicorn
from bench.settings import ROOT
from bench.webhooks import DispatcherProcess

DATABASE_NAME = "booking_bench_offers"
DURATION_S = int(os.environ.get("BENCH_OFFER_DURATION_S", 30))
CONNECTIONS = int(os.environ.get("BENCH_OFFER_CONNECTIONS", 64))
TICKETS = 200
OFFER_TTL_S = 2
CANCEL_EVERY_S = 0.25

OPEN = text("""
INSERT INTO events (name, total_tickets, available_tickets, promotion, offer_ttl_seconds)
VALUES ('hot offers', :n, :n, 'offer', :ttl) RETURNING id
""")
BOOK_MANY = text("SELECT count(*) FROM book_many(:event_id, :users, :requests)")
OVERDUE = text("""
SELECT count(*), coalesce(max(extract(epoch FROM clock_timestamp() - b.offer_expires_at)), 0) FROM bookings b
 WHERE b.event_id = :event_id AND b.status = 'offered' AND b.offer_expires_at <= clock_timestamp()
""")
LAGS = text("""
SELECT extract(epoch FROM e.created_at - b.offer_expires_at) FROM booking_events e
  JOIN bookings b ON b.event_id = e.event_id AND b.id = e.booking_id
 WHERE e.event_id = :event_id AND e.kind = 'expired'
 ORDER BY 1
""")


def main() -> int:
    with postgres_server(os.environ.get("BENCH_DATABASE_URL")) as server_url:
        url = fresh_database(server_url, DATABASE_NAME)
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        event_id = sold_out_event(engine)
        log = ROOT / "instance" / "bench-offers.log"
        log.parent.mkdir(exist_ok=True)
        with Gunicorn("wsgi:app", url, log) as server, DispatcherProcess(server.env, engine, log):
            results = measure(server, engine, event_id)
        engine.dispose()
    print(json.dumps(results, indent=2))
    return 0


def sold_out_event(engine) -> str:
    """TICKETS held by holder-1..holder-TICKETS, booked by the functions."""
    with engine.connect() as conn:
        event_id = conn.execute(OPEN, {"n": TICKETS, "ttl": OFFER_TTL_S}).scalar_one()
        users = [f"holder-{n}" for n in range(1, TICKETS + 1)]
        conn.execute(BOOK_MANY, {"event_id": event_id, "users": users, "requests": [None] * TICKETS})
    return str(event_id)


def measure(server: Gunicorn, engine, event_id: str) -> dict:
    load = start_wrk(ensure_wrk(), server.url, "book_event.lua", [event_id, "hot"], CONNECTIONS, 2, DURATION_S)
    done, overdue = threading.Event(), []
    cancels = threading.Thread(target=cancel_and_sample, args=(server, engine, event_id, done, overdue))
    cancels.start()
    booked = wrk_result(load)
    done.set()
    cancels.join()
    with engine.connect() as conn:
        lags = conn.execute(LAGS, {"event_id": event_id}).scalars().all()
    return {
        "duration_s": DURATION_S,
        "offer_ttl_s": OFFER_TTL_S,
        "bookings_per_s": round(booked["requests_per_s"]),
        "book_latency_ms": booked["latency_ms"],
        "book_errors": booked["errors"],
        "expired": len(lags),
        "lag_s": summary(lags),
        "most_overdue_s": round(float(max(age for _, age in overdue)), 3),
        "most_held_past_time": max(count for count, _ in overdue),
    }


def cancel_and_sample(server: Gunicorn, engine, event_id: str, done: threading.Event, overdue: list) -> None:
    """Until `done`: cancel the next holder, and note how many offers are held past their time, and the oldest."""
    holder = 0
    with engine.connect() as conn:
        while not done.wait(CANCEL_EVERY_S):
            holder += 1
            if holder <= TICKETS:
                cancel(server, event_id, f"holder-{holder}")
            overdue.append(tuple(conn.execute(OVERDUE, {"event_id": event_id}).one()))


def cancel(server: Gunicorn, event_id: str, user: str) -> None:
    body = json.dumps({"eventId": event_id, "userId": user}).encode()
    request = urllib.request.Request(server.url + "/api/cancel", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def summary(values: list[float]) -> dict:
    """Percentiles of `values` (seconds), rounded to the millisecond."""
    ordered = sorted(float(value) for value in values)
    if not ordered:
        return {}

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 3)

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": round(ordered[-1], 3)}


if __name__ == "__main__":
    raise SystemExit(main())
