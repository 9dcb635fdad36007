"""The waiting list at a million entries, measured in the database (docs/performance.md).

    .venv/bin/python -m bench.queue.explain postgresql://127.0.0.1:5432/scratch   # a database at head

Seeds one event with 1 000 000 waiting entries (bench/queue/seed.sql, through psql), makes 1 % of
them leave from the middle through cancel_booking (half of them partly) and 10 000 more join through
book_ticket, so that a million wait. Then prints the median server time (EXPLAIN ANALYZE, planning
included) of booking-status at positions 1, 500 000 and 1 000 000, the v1 count beside the counters,
and of a booking, a cancel and a promotion, each rolled back, in that queue and in a queue of 10.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg2

BIG, SMALL = str(uuid.uuid4()), str(uuid.uuid4())
REPEAT = 41

STATUS = """
SELECT b.id, b.status, b.quantity, {place}
  FROM events e
  LEFT JOIN LATERAL (SELECT * FROM bookings b WHERE b.event_id = e.id AND b.user_id = %(user)s
                      ORDER BY b.status = 'cancelled', b.seq DESC LIMIT 1) b ON true
  {join}
 WHERE e.id = %(event)s"""
COUNTED = STATUS.format(
    place="""CASE WHEN b.status = 'waiting' THEN (SELECT count(*) FROM bookings w
        WHERE w.event_id = e.id AND w.status = 'waiting' AND w.seq <= b.seq) END""",
    join="",
)
COUNTERS = STATUS.format(
    place="place.waiting_position, place.tickets_ahead",
    join="""LEFT JOIN LATERAL
        waiting_place(e.id, b.queue_ordinal, b.queue_tickets_before) place ON b.status = 'waiting'""",
)
WRITES = {
    "book: joins the queue": "SELECT * FROM book_ticket(%(event)s, 'newcomer', NULL, 2)",
    "cancel a waiting entry in the middle": "SELECT * FROM cancel_booking(%(event)s, %(user)s, NULL)",
    "partial cancel of a waiting entry": "SELECT * FROM cancel_booking(%(event)s, %(user)s, NULL, 1)",
    "cancel a holder, promoting the head": "SELECT * FROM cancel_booking(%(event)s, 'holder-1', NULL)",
}


def median_ms(cur, sql: str, params: dict) -> float:
    """Median server time of `sql` over REPEAT runs, each in a transaction rolled back."""
    times = []
    for _ in range(REPEAT):
        cur.execute("BEGIN")
        cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
        plan = cur.fetchone()[0][0]
        cur.execute("ROLLBACK")
        times.append(plan["Planning Time"] + plan["Execution Time"])
    return statistics.median(times)


def seed(url: str, cur) -> None:
    script = Path(__file__).with_name("seed.sql")
    subprocess.run(
        ["psql", "-q", "-v", "ON_ERROR_STOP=1", "-v", f"event={BIG}", "-v", "waiting=1000000", "-f", str(script), url],
        check=True,
    )
    cur.execute("SELECT count(*) FROM generate_series(7, 1000000, 100) i, cancel_booking(%s, 'w' || i, NULL, 1)", [BIG])
    cur.execute("SELECT count(*) FROM generate_series(50, 1000000, 100) i, cancel_booking(%s, 'w' || i, NULL)", [BIG])
    for start in range(0, 10_000, 1_000):
        cur.execute(
            "SELECT count(*) FROM generate_series(%s, %s) i, book_ticket(%s, 'late' || i, NULL, 1 + i %% 3)",
            [start + 1, start + 1_000, BIG],
        )
    cur.execute(
        "INSERT INTO events (id, total_tickets, available_tickets, max_per_booking) VALUES (%s, 10, 10, 4)", [SMALL]
    )
    cur.execute("SELECT count(*) FROM generate_series(1, 5) i, book_ticket(%s, 'holder-' || i, NULL, 2)", [SMALL])
    cur.execute("SELECT count(*) FROM generate_series(1, 10) i, book_ticket(%s, 's' || i, NULL, 1 + i %% 4)", [SMALL])
    cur.execute("VACUUM ANALYZE")


def users_at(cur, positions: list[int]) -> list[str]:
    cur.execute(
        """SELECT user_id FROM (SELECT user_id, row_number() OVER (ORDER BY seq) AS position FROM bookings
                    WHERE event_id = %s AND status = 'waiting') AS queue WHERE position = ANY(%s) ORDER BY position""",
        [BIG, positions],
    )
    return [user for (user,) in cur.fetchall()]


def main(url: str) -> None:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    cur = conn.cursor()
    seed(url, cur)
    positions = [1, 500_000, 1_000_000]
    for label, sql in (("v1: a count over the queue", COUNTED), ("0008: waiting_place", COUNTERS)):
        for position, user in zip(positions, users_at(cur, positions), strict=True):
            print(
                f"booking-status, {label:28} position {position:>9,}: {median_ms(cur, sql, dict(user=user, event=BIG)):8.3f} ms"
            )
    for event, user, queue in ((BIG, "w505051", "1 000 000 waiting"), (SMALL, "s5", "10 waiting")):
        for what, sql in WRITES.items():
            print(f"{what:38} {queue:>18}: {median_ms(cur, sql, dict(event=event, user=user)):8.3f} ms")


if __name__ == "__main__":
    main(sys.argv[1])
