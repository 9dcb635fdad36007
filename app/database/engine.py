"""The database extension: one SQLAlchemy engine per app, its pool and its libpq settings."""

from __future__ import annotations

import time
from collections.abc import Mapping

import psycopg2
from flask import Flask, current_app
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, DisconnectionError

from app.database.group_commit import Batcher

APPLICATION_NAME = "booking-service"  # how the service's sessions are named in pg_stat_activity
# A pooled connection idle for longer is pinged before use (see `_ping_idle_connections`).
PING_IF_IDLE_S = 1.0
# A connection that dies while in use fails its return to the pool (the reset of its isolation level)
# with the driver's own error, which SQLAlchemy does not wrap: both mean "the database is away".
DATABASE_ERRORS = (DBAPIError, psycopg2.Error)
# A write on a server in recovery: the leader we reached was demoted (a failover or switchover), or a
# proxy sent us to a standby for a moment. That server will not take writes again before it is promoted.
READ_ONLY_SQL_TRANSACTION = "25006"


def sqlstate(error: DBAPIError) -> str | None:
    """PostgreSQL's five-character code for the error (e.g. 40P01, deadlock detected), if it gave one."""
    return getattr(error.orig, "pgcode", None)


class Database:
    """Owns one SQLAlchemy engine per app, and the Batcher that groups the app's bookings of one event
    (app/database/group_commit.py); services receive `db.engine` and `db.batcher` as plain arguments."""

    def init_app(self, app: Flask, config) -> None:
        app.extensions["database"] = build_engine(config, config.db_pool_size)
        app.extensions["group_commit"] = Batcher()

    @property
    def engine(self) -> Engine:
        return self.engine_of(current_app)

    @property
    def batcher(self) -> Batcher:
        return self.batcher_of(current_app)

    @staticmethod
    def engine_of(app: Flask) -> Engine:
        return app.extensions["database"]

    @staticmethod
    def batcher_of(app: Flask) -> Batcher:
        return app.extensions["group_commit"]


def build_engine(config, pool_size: int) -> Engine:
    """An engine with the service's libpq settings and idle-connection pings (the app's, the dispatcher's)."""
    engine = create_engine(
        config.database_url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=5,
        connect_args=_connect_args(config),
    )
    _ping_idle_connections(engine)
    _lose_read_only_connections(engine)
    return engine


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


def _lose_read_only_connections(engine: Engine) -> None:
    """Treat a connection whose server refused a write for being read-only as a lost one.

    So the request answers 503 with Retry-After (app/web/errors.py) instead of 500, and the pool drops
    its connections opened before it: new ones reach the new leader, through a proxy that follows it
    (the cluster's HAProxy) or a libpq URL that names every member with `target_session_attrs=read-write`.
    """

    @event.listens_for(engine, "handle_error")
    def _lost_if_read_only(context) -> None:
        if _read_only(context.original_exception):
            context.is_disconnect = True


def _read_only(error: BaseException) -> bool:
    return getattr(error, "pgcode", None) == READ_ONLY_SQL_TRANSACTION


def fetch_autocommit(engine: Engine, sql: str, parameters: Mapping) -> list[tuple]:
    """The rows of `sql` (DBAPI paramstyle) run in autocommit mode on a raw pooled connection.

    For the hottest statement only (a booking batch): SQLAlchemy's Connection costs about as much
    worker CPU as the driver itself, and switching its isolation level to AUTOCOMMIT and back made
    a round trip per checkout (docs/performance.md). The pool is still SQLAlchemy's, with its
    checkout events, and a driver error is raised as SQLAlchemy would raise it: the same DBAPIError
    subclass, a lost connection invalidated (with every older one of the pool) and flagged as such.
    """
    driver_error = engine.dialect.loaded_dbapi.Error
    connection = None
    try:
        connection = engine.raw_connection()
        return _fetch_autocommit(connection.driver_connection, sql, parameters)
    except driver_error as error:
        lost = _read_only(error) or engine.dialect.is_disconnect(
            error, connection and connection.driver_connection, None
        )
        if lost and connection is not None:
            engine.pool._invalidate(connection, error)  # noqa: SLF001 (what Connection does on a disconnect)
        raise DBAPIError.instance(
            sql, parameters, error, driver_error, connection_invalidated=lost, dialect=engine.dialect
        ) from error
    finally:
        if connection is not None:
            connection.close()


def _fetch_autocommit(driver, sql: str, parameters: Mapping) -> list[tuple]:
    driver.autocommit = True  # an attribute: psycopg2 sends nothing for it
    try:
        with driver.cursor() as cursor:
            cursor.execute(sql, parameters)
            return cursor.fetchall()
    finally:
        if not driver.closed:
            driver.autocommit = False  # as the pool lends it to everyone else


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


db = Database()
