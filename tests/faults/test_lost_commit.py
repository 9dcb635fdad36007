"""A connection lost between the last statement and COMMIT: the commit's fate is unknown to the
service, so the answer is 503 (retry, with your key), never 500 and never a success."""

from __future__ import annotations

import os
import signal
import time

import psycopg2
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from app.booking import services
from app.database.engine import db
from tests.helpers.api import assert_problem

RECOVERY_DEADLINE_S = 30


def crash_own_backend_then_return(conn):
    """SIGKILL the session's server process, as a crash would: it closes the socket without a word."""
    os.kill(conn.execute(text("SELECT pg_backend_pid()")).scalar_one(), signal.SIGKILL)
    return "done"


def test_a_connection_lost_at_commit_is_a_503_and_the_service_serves_again(make_app, restartable_pg):
    app = make_app(database_url=restartable_pg.database_url)

    @app.route("/lost-at-commit")
    def lost_at_commit():
        return services.write(db.engine, crash_own_backend_then_return)

    client = app.test_client()
    response = client.get("/lost-at-commit")
    # PostgreSQL restarts its sessions after a crashed one; the service must find its way back.
    deadline = time.monotonic() + RECOVERY_DEADLINE_S
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the service did not recover from the crash"
        time.sleep(0.1)  # polling interval, not ordering

    assert_problem(response, 503, "unavailable")
    assert response.headers["Retry-After"] == "1"


def test_a_bare_database_error_that_lost_its_connection_is_a_503_too(make_app):
    # psycopg2 reports a connection that closed during COMMIT as an OperationalError or, depending on
    # timing, as a bare DatabaseError: this is the one SQLAlchemy raised for it in a chaos run.
    closed = psycopg2.DatabaseError("server closed the connection unexpectedly")
    lost = DatabaseError("COMMIT", None, closed, connection_invalidated=True)
    app = make_app()

    @app.route("/lost")
    def raise_lost():
        raise lost

    assert_problem(app.test_client().get("/lost"), 503, "unavailable")
