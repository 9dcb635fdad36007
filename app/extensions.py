"""Extensions, created once and attached to each app with `init_app`.

flask-smorest's `Api` keeps one app and one spec, so `create_app` builds one per app instead.
"""

from __future__ import annotations

import select
import time

import psycopg2
import psycopg2.extensions
from flask import Flask, current_app
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, DisconnectionError
from webargs.flaskparser import FlaskParser

from app.http import bind_subjects


APPLICATION_NAME = "booking-service"  # how the service's sessions are named in pg_stat_activity
# A pooled connection idle for longer is pinged before use (see `_ping_idle_connections`).
PING_IF_IDLE_S = 1.0


def sqlstate(error: DBAPIError) -> str | None:
    """PostgreSQL's five-character code for the error (e.g. 40P01, deadlock detected), if it gave one."""
    return getattr(error.orig, "pgcode", None)


class Database:
    """Owns one SQLAlchemy engine per app; services receive `db.engine` as a plain argument."""

    def init_app(self, app: Flask, config) -> None:
        engine = create_engine(
            config.database_url,
            pool_size=config.db_pool_size,
            max_overflow=0,
            pool_timeout=5,
            connect_args=_connect_args(config),
        )
        _ping_idle_connections(engine)
        app.extensions["database"] = engine

    @property
    def engine(self) -> Engine:
        return current_app.extensions["database"]


def _ping_idle_connections(engine: Engine) -> None:
    """Replace, before use, a pooled connection that idled PING_IF_IDLE_S and no longer answers.

    A connection the database dropped while it idled (a restart, an idle timeout) is thus never
    handed to a request. A connection in steady use skips the round trip, which under load would
    cost every request one: if the database restarts under load, the requests it interrupts fail
    with 503, and SQLAlchemy then discards every connection of the pool opened before the failure.
    """

    @event.listens_for(engine, "checkin")
    def _idle_from_now(_dbapi_connection, record) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, _proxy) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < PING_IF_IDLE_S:
            return  # a new connection, or one in steady use
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError("the database dropped an idle connection") from error  # the pool reconnects


def _connect_args(config) -> dict:
    """libpq connection parameters; the timeouts only those the app is to set itself."""
    args = {
        "connect_timeout": config.db_connect_timeout_s,
        # A server that vanished without closing the connection (host down, network cut) would
        # leave a request waiting on its socket forever: TCP keepalives notice within ~15 s.
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 5,
        "application_name": APPLICATION_NAME,
    }
    timeouts = {"statement_timeout": config.db_statement_timeout_ms, "lock_timeout": config.db_lock_timeout_ms}
    options = " ".join(f"-c {name}={value}" for name, value in timeouts.items() if value is not None)
    if options:
        # A startup parameter costs no round trip, but PgBouncer refuses it: there, set both variables
        # empty and the timeouts on the server.
        args["options"] = options
    return args


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


class ContractParser(FlaskParser):
    """The contract answers validation failures with 400, not webargs' default 422."""

    DEFAULT_VALIDATION_STATUS = 400

    def parse(self, *args, **kwargs):
        parsed = super().parse(*args, **kwargs)
        bind_subjects(parsed)  # validated values only: the log line says what the request was about
        return parsed


db = Database()
