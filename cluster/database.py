"""The service's database on the cluster's PostgreSQL: made, given the app's timeouts, and dropped.

The cluster's PostgreSQL is a Patroni cluster (cluster/patroni.py), reached at the leader through
HAProxy (cluster/leader_proxy.py): `Postgres` is that address, wherever the leader is at the moment.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg2
from psycopg2 import sql

USER = "postgres"


@dataclass(frozen=True)
class Postgres:
    """Where the leader is reached over TCP."""

    host: str
    port: int

    def connect(self, database: str = "postgres"):
        return psycopg2.connect(host=self.host, port=self.port, user=USER, dbname=database, connect_timeout=3)

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@{self.host}:{self.port}/{database}"


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
