"""Extensions, created once and attached to each app with `init_app`.

flask-smorest's `Api` keeps one app and one spec, so `create_app` builds one per app instead.
"""

from __future__ import annotations

from flask import Flask, current_app
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import DBAPIError
from webargs.flaskparser import FlaskParser

from app.http import bind_subjects


APPLICATION_NAME = "booking-service"  # how the service's sessions are named in pg_stat_activity


def sqlstate(error: DBAPIError) -> str | None:
    """PostgreSQL's five-character code for the error (e.g. 40P01, deadlock detected), if it gave one."""
    return getattr(error.orig, "pgcode", None)


class Database:
    """Owns one SQLAlchemy engine per app; services receive `db.engine` as a plain argument."""

    def init_app(self, app: Flask, config) -> None:
        app.extensions["database"] = create_engine(
            config.database_url,
            pool_size=config.db_pool_size,
            max_overflow=0,
            pool_timeout=5,
            pool_pre_ping=True,  # a connection the database dropped (restart) is replaced, not used
            connect_args=_connect_args(config),
        )

    @property
    def engine(self) -> Engine:
        return current_app.extensions["database"]


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


class ContractParser(FlaskParser):
    """The contract answers validation failures with 400, not webargs' default 422."""

    DEFAULT_VALIDATION_STATUS = 400

    def parse(self, *args, **kwargs):
        parsed = super().parse(*args, **kwargs)
        bind_subjects(parsed)  # validated values only: the log line says what the request was about
        return parsed


db = Database()
