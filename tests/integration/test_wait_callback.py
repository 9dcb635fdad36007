"""The wait callback of the gevent workers (app/database/engine.py): queries work, and a connection attempt
to a server that never answers gives up after connect_timeout."""

from __future__ import annotations

import socket
import time

import psycopg2
import psycopg2.extensions
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from app.database.cooperative_wait import wait_cooperatively


@pytest.fixture
def cooperative_waits():
    psycopg2.extensions.set_wait_callback(wait_cooperatively)
    yield
    psycopg2.extensions.set_wait_callback(None)


@pytest.fixture
def silent_server():
    """A port whose kernel completes the TCP handshake, but where nobody ever reads or answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_connections_and_queries_go_through_the_callback(cooperative_waits, database_url):
    engine = create_engine(database_url, poolclass=NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 40 + 2")).scalar_one() == 42
    finally:
        engine.dispose()


def test_a_connection_attempt_to_a_silent_server_gives_up_after_connect_timeout(cooperative_waits, silent_server):
    started = time.monotonic()

    with pytest.raises(psycopg2.OperationalError, match="timeout expired"):
        psycopg2.connect(host="127.0.0.1", port=silent_server, dbname="x", connect_timeout=1)
    assert time.monotonic() - started < 5
