"""`python -m bench.offer_backlog`: how late the sweeper expires offers when many events' come due at once.

EVENTS events in offer mode, each with one offer (its ticket freed by a cancel, offered to the next
waiter), their deadlines spread at random over SPREAD_S seconds from a second on; then one dispatcher
(`python -m app.workers`, as `make run` starts it) expires them all. The lag of an expiry is
its ledger entry's time less the booking's offer_expires_at (both the database's clock); the contract
promises 5 s. Where bench.offer_lag measures one hot event's lock, this measures the sweeper's own pace.

On a database of its own on the bench server (BENCH_DATABASE_URL, else an embedded PostgreSQL);
BENCH_BACKLOG_EVENTS and BENCH_BACKLOG_SPREAD_S change the load. Prints one JSON object of results.
"""

from __future__ import annotations

import json
import os
import time

from sqlalchemy import create_engine, text

from bench.database import postgres_server
from bench.offer_lag import summary
from bench.organisers import fresh_database
from bench.settings import ROOT
from bench.webhooks import DispatcherProcess

DATABASE_NAME = "booking_bench_offer_backlog"
EVENTS = int(os.environ.get("BENCH_BACKLOG_EVENTS", 1000))
SPREAD_S = float(os.environ.get("BENCH_BACKLOG_SPREAD_S", 5))
GIVE_UP_S = 120
POLL_S = 0.5

OPEN = text("""
INSERT INTO events (name, total_tickets, available_tickets, promotion, offer_ttl_seconds)
SELECT 'offer ' || n, 1, 1, 'offer', 3600 FROM generate_series(1, :n) n RETURNING id
""")
BOOK_MANY = text(
    "SELECT count(*) FROM book_many(:event_id, ARRAY['holder', 'waiter', 'next'], ARRAY[NULL, NULL, NULL]::text[])"
)
CANCEL = text("SELECT outcome FROM cancel_booking(:event_id, 'holder', NULL)")
# Each offer's deadline moved to a random moment of the next SPREAD_S seconds, a second from now.
DUE_SOON = text("""
UPDATE bookings SET offer_expires_at = clock_timestamp() + interval '1 second' + random() * :spread * interval '1 second'
 WHERE status = 'offered' AND user_id = 'waiter'
""")
WAITERS_OFFERED = text("SELECT count(*) FROM bookings WHERE status = 'offered' AND user_id = 'waiter'")
LAGS = text("""
SELECT extract(epoch FROM e.created_at - b.offer_expires_at) FROM booking_events e
  JOIN bookings b ON b.event_id = e.event_id AND b.id = e.booking_id
 WHERE e.kind = 'expired' AND b.user_id = 'waiter'
""")


def main() -> int:
    results = run(DATABASE_NAME, offer_at_every_event, DUE_SOON, WAITERS_OFFERED, LAGS, "bench-offer-backlog.log")
    print(json.dumps(results, indent=2))
    return 0


def run(database_name: str, prepare, due_soon, still_due, lags, log_name: str) -> dict:
    """On a fresh database: `prepare(engine)` what is to expire, `due_soon` moves their deadlines into the
    next SPREAD_S seconds, then one background process sweeps them; the lags once `still_due` counts none."""
    with postgres_server(os.environ.get("BENCH_DATABASE_URL")) as server_url:
        url = fresh_database(server_url, database_name)
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        prepare(engine)
        log = ROOT / "instance" / log_name
        log.parent.mkdir(exist_ok=True)
        with engine.connect() as conn:
            conn.execute(due_soon, {"spread": SPREAD_S})
        with DispatcherProcess({**os.environ, "DATABASE_URL": url}, engine, log):
            results = measure(engine, still_due, lags)
        engine.dispose()
    return results


def offer_at_every_event(engine) -> None:
    """EVENTS events of one ticket, each held by `holder` with `waiter` and `next` queued, then `holder`
    cancelled: `waiter` holds the offer."""
    with engine.connect() as conn:
        for event_id in conn.execute(OPEN, {"n": EVENTS}).scalars().all():
            conn.execute(BOOK_MANY, {"event_id": event_id})
            conn.execute(CANCEL, {"event_id": event_id})


def measure(engine, still_due, lags) -> dict:
    """Once `still_due` counts nothing left (or GIVE_UP_S passed): the `lags` of the expiries."""
    deadline = time.monotonic() + GIVE_UP_S
    with engine.connect() as conn:
        while conn.execute(still_due).scalar_one() and time.monotonic() < deadline:
            time.sleep(POLL_S)  # polling for the end, not ordering anything
        found = conn.execute(lags).scalars().all()
        left = conn.execute(still_due).scalar_one()
    return {
        "events": EVENTS,
        "spread_s": SPREAD_S,
        "expired": len(found),
        "not_expired": left,
        "lag_s": summary(found),
        "over_5_s": sum(float(lag) > 5 for lag in found),
    }


if __name__ == "__main__":
    raise SystemExit(main())
