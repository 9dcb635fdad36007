"""The bench database: server, a fresh migrated database, the scenarios' events, and the checks.

Events get deterministic ids, `00000000-0000-4000-<group>-<k>`: one group per measured run, so
that each run starts from fresh events and the wrk and pgbench scripts can compute the same ids.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, make_url, text

from app.config import normalise_database_url
from app.operations.embedded_pg import EmbeddedPostgres
from bench.settings import BENCH_DIR, ROOT

DATABASE_NAME = "booking_bench"
QUEUE_SEEDS = BENCH_DIR / "queue"
EMBEDDED_DATA_DIR = ROOT / "instance" / "pgdata-bench"
# Shown in the report: what bounds a commit (and so the hot row) on this server.
REPORTED_SETTINGS = (
    "server_version",
    "synchronous_commit",
    "fsync",
    "wal_sync_method",
    "commit_delay",
    "shared_buffers",
    "max_connections",
)


def event_prefix(group: int) -> str:
    """Everything but the last 12 digits of a group's event ids (bench/wrk/common.lua agrees)."""
    return f"00000000-0000-4000-{group:04d}-"


def event_id(group: int, k: int) -> str:
    return f"{event_prefix(group)}{k:012d}"


@contextlib.contextmanager
def postgres_server(database_url: str | None) -> Iterator[str]:
    """URL of the server to bench on: `database_url`'s, else an embedded one we start and stop."""
    if database_url:
        yield normalise_database_url(database_url)
        return
    server = EmbeddedPostgres(EMBEDDED_DATA_DIR)
    server.start()
    try:
        yield server.url()
    finally:
        if not server.adopted:
            server.stop()


class BenchDatabase:
    """A database of its own on the bench server, dropped and migrated afresh for each run."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.url = make_url(server_url).set(database=DATABASE_NAME).render_as_string(hide_password=False)
        self.engine: Engine | None = None

    def recreate(self) -> None:
        """Drop what an earlier run left, create the database empty, and migrate it to head."""
        admin = create_engine(self.server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE_NAME}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{DATABASE_NAME}"'))
        admin.dispose()
        self.engine = create_engine(self.url, isolation_level="AUTOCOMMIT")
        alembic_config = AlembicConfig(str(ROOT / "alembic.ini"))
        with self.engine.begin() as conn:
            alembic_config.attributes["connection"] = conn
            command.upgrade(alembic_config, "head")

    def create_events(
        self,
        group: int,
        count: int,
        tickets: int,
        name: str,
        hold_ttl_s: int | None = None,
        ticket_types: tuple[tuple[str, int], ...] = (),
    ) -> None:
        """`count` events of `tickets` tickets each, all available; with checkout holds of `hold_ttl_s`, if given;
        with `ticket_types` ((code, total), by position) instead of the one `standard` type, if given."""
        with self.engine.begin() as conn:
            conn.execute(
                text("""
                INSERT INTO events (id, name, total_tickets, available_tickets, hold_ttl_seconds)
                SELECT (:prefix || lpad(k::text, 12, '0'))::uuid, :name, :tickets, :tickets, :hold_ttl
                  FROM generate_series(1, :count) k"""),
                {
                    "prefix": event_prefix(group),
                    "name": name,
                    "tickets": tickets,
                    "count": count,
                    "hold_ttl": hold_ttl_s,
                },
            )
            if ticket_types:
                codes, totals = (list(column) for column in zip(*ticket_types, strict=True))
                conn.execute(TICKET_TYPES, {"prefix": event_prefix(group), "codes": codes, "totals": totals})

    def create_churn_event(self, group: int, pools: range, pool_size: int, waiters: int) -> None:
        """A sold-out event: pool p's users c-<p>-1..c-<p>-<pool_size> hold its tickets, then
        `waiters` users wait. A load thread or client cancels only the users of its own pool."""
        params = {
            "id": event_id(group, 1),
            "first": pools.start,
            "last": pools.stop - 1,
            "size": pool_size,
            "waiters": waiters,
        }
        with self.engine.begin() as conn:
            conn.execute(
                text("""
                INSERT INTO events (id, name, total_tickets, available_tickets, waiting_count, waiting_tickets,
                                    queue_joined_entries, queue_joined_tickets)
                VALUES (:id, 'churn', :size * (:last - :first + 1), 0, :waiters, :waiters, :waiters, :waiters)"""),
                params,
            )
            conn.execute(
                text("""
                INSERT INTO bookings (event_id, user_id, status)
                SELECT :id, 'c-' || p || '-' || k, 'confirmed'
                  FROM generate_series(1, :size) k, generate_series(:first, :last) p ORDER BY k, p"""),
                params,
            )
            conn.execute(
                text("""
                INSERT INTO bookings (event_id, user_id, status, queue_ordinal, queue_tickets_before)
                SELECT :id, 'w-' || i, 'waiting', i, i - 1 FROM generate_series(1, :waiters) i ORDER BY i"""),
                params,
            )

    def seed_queue(self, group: int, k: int, waiting: int, psql: str, seed: str = "seed.sql") -> None:
        """Event k of the group with `waiting` entries in its waiting list (bench/queue/<seed>, through
        psql): user w<i> waits at position i (seed.sql: wanting 1 + i % 4 tickets of one type;
        seed_types.sql: 1..3 tickets over five types)."""
        environment = {**os.environ, **self.libpq_environment()}
        subprocess.run(
            [
                psql,
                "-q",
                "-X",
                "-v",
                "ON_ERROR_STOP=1",
                "-v",
                f"event={event_id(group, k)}",
                "-v",
                f"waiting={waiting}",
                "-f",
                str(QUEUE_SEEDS / seed),
            ],
            env=environment,
            check=True,
        )

    def settle(self) -> None:
        """Start each run from the same state: statistics fresh, no checkpoint owed."""
        with self.engine.connect() as conn:
            conn.execute(text("VACUUM ANALYZE"))
            conn.execute(text("CHECKPOINT"))

    def check(self, group: int) -> dict:
        """The contract's invariants over a group's events, as the tables hold them now."""
        with self.engine.connect() as conn:
            rows = conn.execute(INVARIANTS, {"prefix": event_prefix(group)}).mappings().all()
            commits = conn.execute(COMMITS, {"prefix": event_prefix(group)}).mappings().one()
        failures = [dict(row) for row in rows if not _invariants_hold(row)]
        return {
            "events": len(rows),
            "bookings": sum(row["confirmed"] + row["held"] + row["waiting"] + row["cancelled"] for row in rows),
            "ok": bool(rows) and not failures,
            "failures": failures[:5],
            "commits": dict(commits),
        }

    def postgres_settings(self) -> dict:
        with self.engine.connect() as conn:
            return {name: conn.execute(text(f"SHOW {name}")).scalar_one() for name in REPORTED_SETTINGS}

    def libpq_environment(self) -> dict:
        """PG* variables that point libpq programs (pgbench) at the bench database."""
        url = make_url(self.url)
        host = url.query.get("host") or url.host  # a Unix socket directory comes as ?host=
        env = {
            "PGHOST": host,
            "PGPORT": url.port,
            "PGUSER": url.username,
            "PGPASSWORD": url.password,
            "PGDATABASE": url.database,
        }
        return {name: str(value) for name, value in env.items() if value}

    def dispose(self) -> None:
        if self.engine is not None:
            self.engine.dispose()


# An event's own types, replacing the `standard` one its insert added (the same position 1), in the
# transaction that made it.
TICKET_TYPES = text("""
INSERT INTO ticket_types (event_id, position, code, total_tickets)
SELECT e.id, t.position, t.code, t.total
  FROM events e, unnest(CAST(:codes AS text[]), CAST(:totals AS int[])) WITH ORDINALITY AS t (code, total, position)
 WHERE e.id::text LIKE :prefix || '%'
    ON CONFLICT (event_id, position) DO UPDATE SET code = excluded.code, total_tickets = excluded.total_tickets;
UPDATE events SET ticket_type_count = cardinality(CAST(:codes AS text[])) WHERE id::text LIKE :prefix || '%';
""")

# Per event: the counts, and FIFO as the tables show it: every confirmed booking joined before
# every waiting one (a promotion out of order would leave an older entry waiting), and the head of
# the queue, if any, wants more tickets than are available (else it should have been confirmed). On an
# event of several types (issue 26) an entry wanting other types may go ahead of one stuck on its own,
# so those two are the one-type rule; there each type's counters must equal its bookings' items instead.
INVARIANTS = text("""
SELECT e.id::text AS event_id, e.total_tickets, e.available_tickets, e.waiting_count, e.waiting_tickets,
       count(b.id) FILTER (WHERE b.status = 'confirmed') AS confirmed,
       coalesce(sum(b.quantity) FILTER (WHERE b.status = 'confirmed'), 0) AS confirmed_tickets,
       count(b.id) FILTER (WHERE b.status = 'waiting') AS waiting,
       coalesce(sum(b.quantity) FILTER (WHERE b.status = 'waiting'), 0) AS wanted_tickets,
       count(b.id) FILTER (WHERE b.status = 'cancelled') AS cancelled,
       count(b.id) FILTER (WHERE b.status = 'held') AS held, e.held_tickets,
       coalesce(sum(b.quantity) FILTER (WHERE b.status = 'held'), 0) AS held_now,
       coalesce(max(b.seq) FILTER (WHERE b.status IN ('confirmed', 'held')), 0)
         < coalesce(min(b.seq) FILTER (WHERE b.status = 'waiting'), 9223372036854775807) AS fifo,
       (SELECT h.quantity FROM bookings h WHERE h.event_id = e.id AND h.status = 'waiting'
         ORDER BY h.seq LIMIT 1) AS head_wants,
       e.ticket_type_count,
       (SELECT coalesce(bool_and(t.taken_tickets = coalesce(i.taken, 0) AND t.taken_tickets <= t.total_tickets
                                 AND t.waiting_tickets = coalesce(i.waiting, 0)), true)
          FROM ticket_types t
          LEFT JOIN (SELECT item.code,
                            sum(item.quantity) FILTER (WHERE h.status IN ('confirmed', 'offered', 'held')) AS taken,
                            sum(item.quantity) FILTER (WHERE h.status = 'waiting') AS waiting
                       FROM bookings h, unnest(h.item_types, h.item_quantities) AS item (code, quantity)
                      WHERE h.event_id = e.id
                      GROUP BY item.code) i ON i.code = t.code
         WHERE t.event_id = e.id) AS types_counted
  FROM events e LEFT JOIN bookings b ON b.event_id = e.id
 WHERE e.id::text LIKE :prefix || '%'
 GROUP BY e.id
""")

# How many bookings each commit carried: the ledger entries of one transaction share its xmin (the
# ledger is only ever appended to), so one group of them is one `book_many` statement, or one
# pgbench transaction. Its mean is the batch size, with no counting in the service itself.
COMMITS = text("""
SELECT count(*) AS commits, coalesce(sum(n), 0) AS bookings, round(avg(n), 2) AS mean, max(n) AS max,
       count(*) FILTER (WHERE n = 1) AS alone
  FROM (SELECT count(*) AS n FROM booking_events
         WHERE event_id::text LIKE :prefix || '%' AND kind IN ('booked', 'waitlisted')
         GROUP BY xmin::text) per_commit
""")


def _invariants_hold(row) -> bool:
    return (
        row["confirmed_tickets"] + row["held_now"] + row["available_tickets"] == row["total_tickets"]
        and row["held_now"] == row["held_tickets"]
        and (row["waiting"], row["wanted_tickets"]) == (row["waiting_count"], row["waiting_tickets"])
        and (row["ticket_type_count"] > 1 or row["head_wants"] is None or row["head_wants"] > row["available_tickets"])
        and (row["ticket_type_count"] > 1 or row["fifo"])
        and (row["ticket_type_count"] == 1 or row["types_counted"])
    )
