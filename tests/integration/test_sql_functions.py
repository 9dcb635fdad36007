"""Each database function's definition at head is its source file, app/<package>/sql/<function>.sql (the
booking rules in app/booking/sql/, the webhook trigger in app/notifications/sql/).

The file is run in a transaction on the migrated database and rolled back: PostgreSQL itself then
says whether it changes anything (`pg_get_functiondef` renders the whole definition: arguments,
result, language, volatility and body), so no normalisation of the text is needed.
"""

from __future__ import annotations

import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import text

from app.config import PROJECT_ROOT
from app.database.functions import create_or_replace

SOURCES = sorted(PROJECT_ROOT.glob("app/*/sql/*.sql"), key=lambda source: source.stem)

FUNCTIONS = text("""
SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'public'
 ORDER BY p.proname, p.oid::regprocedure::text
""")


def definitions(conn) -> list[tuple[str, str]]:
    """(name, definition) of every function in the public schema; an overload is a second row."""
    return [tuple(row) for row in conn.execute(FUNCTIONS)]


def test_every_function_at_head_has_one_source_file_named_after_it(engine):
    with engine.connect() as conn:
        names = [name for name, _ in definitions(conn)]

    assert names == [source.stem for source in SOURCES]


@pytest.mark.parametrize("source", SOURCES, ids=lambda source: source.stem)
def test_running_the_source_file_at_head_changes_no_function(engine, source):
    with engine.connect() as conn:
        at_head = definitions(conn)
        # Run as a migration would, verbatim: no bind parameters, so `%` and `:` mean themselves.
        conn.execution_options(no_parameters=True).exec_driver_sql(source.read_text())
        from_source = definitions(conn)
        conn.rollback()

    assert from_source == at_head


def test_create_or_replace_runs_a_frozen_definition_verbatim_with_its_colons_and_percents(engine):
    definition = "CREATE OR REPLACE FUNCTION pg_temp.probe() RETURNS text LANGUAGE sql AS $$ SELECT 'a :b 100%' $$"
    with engine.connect() as conn, Operations.context(MigrationContext.configure(conn)):
        create_or_replace(definition)
        answer = conn.execute(text("SELECT pg_temp.probe()")).scalar_one()
        conn.rollback()

    assert answer == "a :b 100%"
