"""Databases in tests: scratch ones and migrations on the server, and reading what the service left in one
(rows, the ledger, its sessions)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, func, make_url, select, text

from app.config import PROJECT_ROOT
from app.database.engine import APPLICATION_NAME
from app.database.tables import booking_events, events
from app.operations import audit


def scratch_database(server_url: str) -> str:
    """Create an empty database named for this run on the server; return its URL."""
    name = f"booking_test_{uuid.uuid4().hex[:12]}"
    run_on_server(server_url, f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, url: str) -> None:
    run_on_server(server_url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


def run_on_server(server_url: str, statement: str) -> None:
    """One statement outside a transaction, as CREATE and DROP DATABASE need."""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(statement))
    admin.dispose()


def migrate(url: str, revision: str, direction: str = "upgrade") -> None:
    """Run alembic against `url`, as `alembic upgrade|downgrade <revision>` would."""
    alembic_config = AlembicConfig(str(PROJECT_ROOT / "alembic.ini"))
    engine = create_engine(url)
    with engine.begin() as conn:
        alembic_config.attributes["connection"] = conn
        getattr(command, direction)(alembic_config, revision)
    engine.dispose()


@contextmanager
def seeded_event(server_url: str, seed: list[str], rows: int) -> Iterator[tuple[str, str]]:
    """(the URL of a migrated scratch database, its event's id), the event made by `seed[0]` (which returns
    its id) and filled by the other statements (given :event_id and :rows); the database dropped afterwards."""
    url = scratch_database(server_url)
    migrate(url, "head")
    engine = create_engine(url)
    with engine.begin() as conn:
        event_id = conn.execute(text(seed[0]), {"rows": rows}).scalar_one()
        for statement in seed[1:]:
            conn.execute(text(statement), {"event_id": event_id, "rows": rows})
    engine.dispose()
    try:
        yield url, str(event_id)
    finally:
        drop_database(server_url, url)


# The service's database sessions that wait for a lock: a request that a test holds up.
WAITING_SESSIONS = text("""
SELECT pid FROM pg_stat_activity
 WHERE application_name = :name AND datname = current_database() AND wait_event_type = 'Lock'
""")


def waiting_sessions(engine) -> list[int]:
    """Backend pids of the service's sessions that wait for a lock."""
    with engine.connect() as conn:
        return list(conn.execute(WAITING_SESSIONS, {"name": APPLICATION_NAME}).scalars())


def session_exists(engine, pid: int) -> bool:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}).scalar() > 0


def count_rows(engine, table, **equal_to) -> int:
    """How many rows of `table` have the given column values, `count_rows(engine, bookings, event_id=...)`."""
    statement = select(func.count()).select_from(table).where(*(table.c[k] == v for k, v in equal_to.items()))
    with engine.connect() as conn:
        return conn.execute(statement).scalar_one()


def ledger_kinds(engine, event_id) -> list[str]:
    """The kinds of the event's ledger rows (booked, waitlisted, cancelled, promoted), in order."""
    ledger = booking_events.c
    statement = select(ledger.kind).where(ledger.event_id == event_id).order_by(ledger.seq)
    with engine.connect() as conn:
        return list(conn.execute(statement).scalars())


def problems_after(engine, event_id, tampering: str) -> list[str]:
    """The problems `flask check` finds in one event once `tampering` (SQL on :event) is applied; rolled back
    after (an empty `tampering`, `SELECT 1`, checks the event as it is)."""
    with engine.connect() as conn, conn.begin() as transaction:
        conn.execute(text(tampering), {"event": event_id})
        report = audit.Report()
        audit.check_event(conn, conn.execute(select(events).where(events.c.id == event_id)).one(), report)
        transaction.rollback()
    return report.problems
