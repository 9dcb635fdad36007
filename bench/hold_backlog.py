"""`python -m bench.hold_backlog`: how late the hold sweeper expires checkout holds when many come due at
once (issue 25: 10 000 holds on 1 000 events, due within 5 s, all expired within 5 s of their deadline).

EVENTS events with holds on, each of HOLDS_PER_EVENT tickets held by as many users (and two more
waiting, whom the expiries hold for in turn, for an hour), the holders' deadlines spread at random over
SPREAD_S seconds from a second on; then one background process (`python -m app.workers`, as `make run`
starts it) expires them all. The lag of an expiry is its ledger entry's time less the booking's
hold_expires_at (both the database's clock); the contract promises 5 s. The pass and its measure are
bench.offer_backlog's. BENCH_BACKLOG_EVENTS, BENCH_BACKLOG_HOLDS_PER_EVENT and BENCH_BACKLOG_SPREAD_S change the load.
"""

from __future__ import annotations

import json
import os

from sqlalchemy import text

from bench.offer_backlog import EVENTS, run

DATABASE_NAME = "booking_bench_hold_backlog"
HOLDS_PER_EVENT = int(os.environ.get("BENCH_BACKLOG_HOLDS_PER_EVENT", 10))

OPEN = text("""
INSERT INTO events (name, total_tickets, available_tickets, hold_ttl_seconds)
SELECT 'holds ' || n, :holds, :holds, 3600 FROM generate_series(1, :n) n RETURNING id
""")
BOOK_MANY = text("""
SELECT count(*) FROM book_many(:event_id, ARRAY(SELECT 'holder-' || k FROM generate_series(1, :holds) k) || '{waiter-1,waiter-2}',
                               ARRAY(SELECT NULL::text FROM generate_series(1, :holds + 2)))
""")
# Each holder's deadline moved to a random moment of the next SPREAD_S seconds, a second from now.
DUE_SOON = text("""
UPDATE bookings SET hold_expires_at = clock_timestamp() + interval '1 second' + random() * :spread * interval '1 second'
 WHERE status = 'held' AND user_id LIKE 'holder-%'
""")
HOLDERS_HELD = text("SELECT count(*) FROM bookings WHERE status = 'held' AND user_id LIKE 'holder-%'")
LAGS = text("""
SELECT extract(epoch FROM e.created_at - b.hold_expires_at) FROM booking_events e
  JOIN bookings b ON b.event_id = e.event_id AND b.id = e.booking_id
 WHERE e.kind = 'hold_expired' AND b.user_id LIKE 'holder-%'
""")


def main() -> int:
    results = run(DATABASE_NAME, holds_at_every_event, DUE_SOON, HOLDERS_HELD, LAGS, "bench-hold-backlog.log")
    print(json.dumps({**results, "holds_per_event": HOLDS_PER_EVENT}, indent=2))
    return 0


def holds_at_every_event(engine) -> None:
    """EVENTS events of HOLDS_PER_EVENT tickets, each held by one holder, with two users waiting behind."""
    with engine.connect() as conn:
        for event_id in conn.execute(OPEN, {"n": EVENTS, "holds": HOLDS_PER_EVENT}).scalars().all():
            conn.execute(BOOK_MANY, {"event_id": event_id, "holds": HOLDS_PER_EVENT})


if __name__ == "__main__":
    raise SystemExit(main())
