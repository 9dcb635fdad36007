"""The cluster's PostgreSQL: the machine's own at 127.0.0.1:5432 when it answers, else an embedded one.

The embedded server (app/operations/embedded_pg.py) listens on a Unix socket only; PgBouncer reaches it there.
"""

from __future__ import annotations

import pwd
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from psycopg2 import sql
from sqlalchemy import make_url

from app.operations.embedded_pg import EmbeddedPostgres
from cluster import say

MACHINE_HOST, MACHINE_PORT, USER = "127.0.0.1", 5432, "postgres"


@dataclass
class Postgres:
    """Where PostgreSQL listens: `host` is a TCP host, or the directory of its Unix socket."""

    host: str
    port: int = MACHINE_PORT
    embedded: EmbeddedPostgres | None = None

    def connect(self, database: str = "postgres"):
        return psycopg2.connect(host=self.host, port=self.port, user=USER, dbname=database, connect_timeout=3)

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@/{database}?host={self.host}&port={self.port}"

    def socket_owner(self) -> str | None:
        """The user owning the socket directory, who alone may enter it; None over TCP."""
        return pwd.getpwuid(Path(self.host).stat().st_uid).pw_name if self.host.startswith("/") else None

    def stop(self) -> None:
        """Stop the embedded server if this is one; the machine's server is not ours to stop."""
        if self.embedded is not None:
            self.embedded.stop()


def machine_or_embedded(state_dir: Path) -> Postgres:
    """The machine's PostgreSQL if it accepts us, else the embedded one under `state_dir`, started."""
    machine = Postgres(MACHINE_HOST)
    try:
        machine.connect().close()
        say(f"PostgreSQL: the machine's, at {MACHINE_HOST}:{MACHINE_PORT}")
        return machine
    except psycopg2.OperationalError as exc:
        say(f"PostgreSQL at {MACHINE_HOST}:{MACHINE_PORT} does not answer ({_first_line(exc)}); using an embedded one")
    embedded = EmbeddedPostgres(state_dir / "pgdata")
    embedded.start()
    socket_dir = make_url(embedded.url()).query["host"]
    say(f"PostgreSQL: embedded, data in {embedded.data_dir}")
    return Postgres(socket_dir, MACHINE_PORT, embedded)


def prepare_database(server: Postgres, name: str, fresh: bool, settings: dict[str, int]) -> None:
    """Create database `name` (anew if `fresh`) with `settings` (the app's timeouts, in ms) as its defaults.

    Behind PgBouncer the app cannot set them per connection; a database default reaches every server
    connection the bouncer opens, at no cost per request.
    """
    if fresh:
        drop_database(server, name)
    with _admin_cursor(server) as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone() is None:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        for setting, value in settings.items():
            cur.execute(
                sql.SQL("ALTER DATABASE {} SET {} = %s").format(sql.Identifier(name), sql.Identifier(setting)),
                (value,),
            )


def drop_database(server: Postgres, name: str) -> None:
    with _admin_cursor(server) as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def _admin_cursor(server: Postgres) -> Iterator:
    """A cursor on the maintenance database, in autocommit (CREATE/DROP DATABASE refuse transactions)."""
    conn = server.connect()
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or ["no reason given"])[0]
