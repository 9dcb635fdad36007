"""A pooled connection that idled is pinged before use; one in steady use is not (app/database/engine.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.booking import services
from app.database import engine as extensions
from tests.helpers.database import session_exists
from tests.helpers.waiting import wait_until


@pytest.fixture
def pool_of_one(make_app):
    """The app's engine with a single pooled connection, and a function that tells that connection's pid."""
    engine = make_app(db_pool_size=1).extensions["database"]

    def backend_pid() -> int:
        with engine.connect() as conn:
            return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()

    return engine, backend_pid


def terminate(engine, pid: int) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    wait_until(lambda: not session_exists(engine, pid), "the session is gone")


def test_a_connection_dropped_while_idle_is_replaced_before_a_request_uses_it(pool_of_one, engine, monkeypatch):
    app_engine, backend_pid = pool_of_one
    dropped = backend_pid()
    terminate(engine, dropped)
    monkeypatch.setattr(extensions, "PING_IF_IDLE_S", 0.0)

    services.check_database(app_engine)  # would raise had the dead connection been handed out

    assert backend_pid() != dropped


def test_a_connection_in_steady_use_is_not_pinged_and_a_drop_fails_one_request_only(pool_of_one, engine, monkeypatch):
    app_engine, backend_pid = pool_of_one
    monkeypatch.setattr(extensions, "PING_IF_IDLE_S", 3600.0)  # however slow this machine, still "in use"
    terminate(engine, backend_pid())

    with pytest.raises(OperationalError):
        services.check_database(app_engine)
    services.check_database(app_engine)
