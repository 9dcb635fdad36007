"""engine.fetch_autocommit, the raw DBAPI path of a booking batch: its statement commits alone, the
connection goes back to the pool as SQLAlchemy lent it, and a driver error is raised as SQLAlchemy's."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from app.database.engine import fetch_autocommit, sqlstate

RAISE_SERIALIZATION_FAILURE = "DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '40001'; END $$"


@pytest.fixture
def one_connection(database_url):
    """An engine whose pool holds one connection, so that every checkout gets the same one."""
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


def test_the_statement_commits_at_once_and_returns_its_rows(one_connection, engine):
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS raw_cursor_probe (n int)"))
    try:
        rows = fetch_autocommit(one_connection, "INSERT INTO raw_cursor_probe VALUES (%(n)s) RETURNING n", {"n": 7})

        assert rows == [(7,)]
        with engine.connect() as conn:  # another session sees it: committed, not left in a transaction
            assert conn.execute(text("SELECT array_agg(n) FROM raw_cursor_probe")).scalar_one() == [7]
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE raw_cursor_probe"))


def test_the_connection_goes_back_to_the_pool_out_of_autocommit(one_connection):
    fetch_autocommit(one_connection, "SELECT 1", {})

    with one_connection.connect() as conn:  # the same connection: its statements share one transaction
        first, second = (conn.execute(text("SELECT now()")).scalar_one() for _ in range(2))
    assert first == second  # now() is the transaction's start; in autocommit each statement has its own


def test_a_serialization_failure_is_a_dbapi_error_with_its_sqlstate(one_connection):
    with pytest.raises(DBAPIError) as raised:
        fetch_autocommit(one_connection, RAISE_SERIALIZATION_FAILURE, {})

    assert sqlstate(raised.value) == "40001"
    assert not raised.value.connection_invalidated
    assert fetch_autocommit(one_connection, "SELECT 1", {}) == [(1,)]  # the connection is still good


def test_a_lost_connection_is_flagged_invalidated_and_the_pool_connects_anew(one_connection):
    lost_pid = fetch_autocommit(one_connection, "SELECT pg_backend_pid()", {})[0][0]

    with pytest.raises(DBAPIError) as raised:
        fetch_autocommit(one_connection, "SELECT pg_terminate_backend(pg_backend_pid())", {})

    assert raised.value.connection_invalidated
    assert fetch_autocommit(one_connection, "SELECT pg_backend_pid()", {})[0][0] != lost_pid
