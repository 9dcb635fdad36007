"""services.write runs again a transaction that PostgreSQL aborted with a serialization failure or a
deadlock, a bounded number of times; other errors surface at once."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from app.booking import services
from app.database.engine import db
from tests.helpers.api import assert_problem

# PostgreSQL itself raising the error, as it would abort a transaction of ours.
RAISE = "DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '{code}'; END $$"


class FailingWork:
    """Work that fails with SQLSTATE `code` on its first `failures` runs, then writes a row and returns 'done'."""

    def __init__(self, code: str, failures: int) -> None:
        self.code, self.failures, self.runs = code, failures, 0

    def __call__(self, conn):
        self.runs += 1
        conn.execute(text("CREATE TEMP TABLE IF NOT EXISTS attempts (n int) ON COMMIT DROP"))
        conn.execute(text("INSERT INTO attempts VALUES (:n)"), {"n": self.runs})
        if self.runs <= self.failures:
            conn.execute(text(RAISE.format(code=self.code)))
        return conn.execute(text("SELECT array_agg(n) FROM attempts")).scalar_one()


@pytest.mark.parametrize("code", ["40001", "40P01"], ids=["serialization-failure", "deadlock"])
def test_an_aborted_transaction_runs_again_from_scratch_and_succeeds(engine, code, capsys):
    work = FailingWork(code, failures=services.WRITE_ATTEMPTS - 1)

    # Only the last run's own insert is there: each retry started from a rolled-back transaction.
    assert services.write(engine, work) == [services.WRITE_ATTEMPTS]
    assert capsys.readouterr().out.count("transaction_retried") == services.WRITE_ATTEMPTS - 1


def test_an_error_that_persists_surfaces_after_the_last_attempt(engine):
    work = FailingWork("40P01", failures=services.WRITE_ATTEMPTS)

    with pytest.raises(DBAPIError, match="injected"):
        services.write(engine, work)
    assert work.runs == services.WRITE_ATTEMPTS


def test_other_errors_are_not_retried(engine):
    work = FailingWork("23505", failures=1)  # unique_violation: running again would not help

    with pytest.raises(IntegrityError):
        services.write(engine, work)
    assert work.runs == 1


def test_other_database_errors_are_a_500(make_app):
    app = make_app()

    @app.route("/broken-sql")
    def broken_sql():
        return services.write(db.engine, lambda conn: conn.execute(text("SELECT 1/0")))

    response = app.test_client().get("/broken-sql")

    assert_problem(response, 500, "internal_error")
