"""Extensions, created once and attached to each app with `init_app`.

flask-smorest's `Api` keeps one app and one spec, so `create_app` builds one per app instead.
"""

from __future__ import annotations

from flask import Flask, current_app
from sqlalchemy import Engine, create_engine
from webargs.flaskparser import FlaskParser

from app.http import bind_subjects


class Database:
    """Owns one SQLAlchemy engine per app; services receive `db.engine` as a plain argument."""

    def init_app(self, app: Flask, config) -> None:
        app.extensions["database"] = create_engine(
            config.database_url,
            pool_size=config.db_pool_size,
            max_overflow=0,
            pool_timeout=5,
            pool_pre_ping=True,  # a connection the database dropped (restart) is replaced, not used
            connect_args={
                "connect_timeout": config.db_connect_timeout_s,
                "application_name": "booking-service",
                "options": (
                    f"-c statement_timeout={config.db_statement_timeout_ms} "
                    f"-c lock_timeout={config.db_lock_timeout_ms}"
                ),
            },
        )

    @property
    def engine(self) -> Engine:
        return current_app.extensions["database"]


class ContractParser(FlaskParser):
    """The contract answers validation failures with 400, not webargs' default 422."""

    DEFAULT_VALIDATION_STATUS = 400

    def parse(self, *args, **kwargs):
        parsed = super().parse(*args, **kwargs)
        bind_subjects(parsed)  # validated values only: the log line says what the request was about
        return parsed


db = Database()
