"""psycopg2's wait callback for gevent workers (installed by gunicorn.conf.py)."""

from __future__ import annotations

import select
import time

import psycopg2
import psycopg2.extensions


def wait_cooperatively(conn) -> None:
    """psycopg2's wait callback in gevent workers (gunicorn.conf.py): wait for the server in select(),
    which gevent turns into a switch to other requests, instead of blocking the whole worker.

    Like psycopg2.extras.wait_select, except that a connection attempt gives up after the
    connection's connect_timeout: libpq applies that timeout only to a blocking connect, and a
    database host that silently drops packets would otherwise hold the request for minutes.
    """
    deadline = _connect_deadline(conn)
    while (state := conn.poll()) != psycopg2.extensions.POLL_OK:
        sockets = ([conn.fileno()], [], []) if state == psycopg2.extensions.POLL_READ else ([], [conn.fileno()], [])
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not any(select.select(*sockets, timeout)):
            raise psycopg2.OperationalError("timeout expired while connecting to the database")


def _connect_deadline(conn) -> float | None:
    if conn.status != psycopg2.extensions.STATUS_SETUP:
        return None  # a query: statement_timeout and TCP keepalives bound it
    timeout = psycopg2.extensions.parse_dsn(conn.dsn).get("connect_timeout")
    return time.monotonic() + float(timeout) if timeout else None
