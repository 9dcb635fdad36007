"""The alembic migrations and `app.database.tables` describe the same schema, and migrate both ways.

Alembic's autogenerate compares tables, columns (types, nullability, server defaults, identities),
indexes (columns, uniqueness) and foreign keys, but neither CHECK constraints nor the WHERE clause of
a partial index. Those two are compared here through PostgreSQL itself: `app.database.tables` is created with
`create_all` in a scratch database, and the definitions PostgreSQL renders for both are compared.
"""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from app.config import PROJECT_ROOT
from app.database.tables import metadata
from app.operations import audit
from tests.helpers.database import migrate
from tests.helpers.queue import book_sql, booking_rows, open_event, promotion_sql, queue_violations

OUR_FUNCTIONS = (
    "book_ticket(uuid,text,text,integer,text[],integer[],integer)",
    "cancel_booking(uuid,text,text,integer,boolean,text[],integer[])",
    "book_many(uuid,text[],text[],integer[],integer[],text[],integer[])",
    "promote_waiting(uuid,integer,timestamp with time zone,text,timestamp with time zone,boolean)",
    "promote_waiting_types(uuid,integer,timestamp with time zone,text,timestamp with time zone)",
    "update_event(uuid,text,text,integer,integer,boolean,text,integer,integer,jsonb,timestamp with time zone)",
    "cancel_event(uuid,text)",
    "accept_offer(uuid,text,text)",
    "expire_offers(uuid,text)",
    "confirm_hold(uuid,text,text,text)",
    "expire_holds(uuid,text)",
    "pass_on_expired(events,text,timestamp with time zone,text,uuid[],text[],integer[])",
    "join_lobby(events,text,text,integer,text[],integer[],timestamp with time zone)",
    "rank_lobby(events,timestamp with time zone)",
    "seat_lobby(events,text,integer,integer)",
    "draw_lobby(uuid,text,integer,integer)",
    "queue_lobby(events,integer,integer,text)",
    "waits_at_back(events,integer,boolean,boolean)",
)

# Everything in the public schema except alembic's own bookkeeping: (kind, name).
SCHEMA_OBJECTS = text("""
SELECT 'relation', c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relname NOT IN ('alembic_version', 'alembic_version_pkc')
UNION ALL
SELECT 'function', p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'public'
UNION ALL
SELECT 'type', t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname = 'public' AND t.typname NOT IN ('alembic_version', '_alembic_version')
""")

CHECK_CONSTRAINTS = text("""
SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
  FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
 WHERE n.nspname = 'public' AND c.contype = 'c'
""")

INDEXES = text("""
SELECT tablename, indexname, indexdef FROM pg_indexes
 WHERE schemaname = 'public' AND tablename <> 'alembic_version'
""")


def query_set(url: str, statement) -> set[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {tuple(row) for row in conn.execute(statement)}
    finally:
        engine.dispose()


def create_from_models(url: str) -> None:
    engine = create_engine(url)
    try:
        metadata.create_all(engine)
    finally:
        engine.dispose()


def schema_differences(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


def test_autogenerate_finds_no_difference_between_models_and_migrations(database_url):
    assert schema_differences(database_url) == []


@pytest.mark.parametrize("catalog_query", [CHECK_CONSTRAINTS, INDEXES], ids=["check-constraints", "indexes"])
def test_models_and_migrations_define_the_same_constraints_and_indexes(database_url, scratch_url, catalog_query):
    create_from_models(scratch_url)

    assert query_set(scratch_url, catalog_query) == query_set(database_url, catalog_query)


def test_downgrade_to_base_removes_every_table_and_function(scratch_url):
    migrate(scratch_url, "head")
    migrate(scratch_url, "base", "downgrade")

    assert query_set(scratch_url, SCHEMA_OBJECTS) == set()


def test_upgrade_after_downgrade_rebuilds_the_schema(scratch_url, database_url):
    migrate(scratch_url, "head")
    migrate(scratch_url, "base", "downgrade")
    migrate(scratch_url, "head")

    assert query_set(scratch_url, SCHEMA_OBJECTS) == query_set(database_url, SCHEMA_OBJECTS)
    assert schema_differences(scratch_url) == []


@pytest.mark.parametrize("signature", OUR_FUNCTIONS)
def test_booking_function_exists_at_head(database_url, signature):
    found = query_set(database_url, text("SELECT to_regprocedure(:signature)::text").bindparams(signature=signature))

    assert found == {(signature,)}


@pytest.mark.parametrize("signature", OUR_FUNCTIONS)
def test_booking_function_is_volatile_so_each_statement_sees_the_previous_lock_holders_commit(database_url, signature):
    statement = text("SELECT provolatile FROM pg_proc WHERE oid = to_regprocedure(:signature)")

    assert query_set(database_url, statement.bindparams(signature=signature)) == {("v",)}


FUNCTION_DEFINITIONS = text("""
SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'public'
""")


def catalog(url: str) -> set[tuple]:
    """The functions' definitions and the schema's objects."""
    return query_set(url, FUNCTION_DEFINITIONS) | query_set(url, SCHEMA_OBJECTS)


def revisions_in_order() -> list[str]:
    scripts = ScriptDirectory.from_config(AlembicConfig(str(PROJECT_ROOT / "alembic.ini")))
    return [script.revision for script in reversed(list(scripts.walk_revisions()))]


def test_each_downgrade_restores_the_functions_and_objects_of_the_revision_before(scratch_url):
    """Every migration holds its own frozen copies of what its downgrade restores; this proves them."""
    revisions = revisions_in_order()
    expected = {"base": catalog(scratch_url)}
    for revision in revisions:
        migrate(scratch_url, revision)
        expected[revision] = catalog(scratch_url)
    for previous in reversed(["base", *revisions[:-1]]):
        migrate(scratch_url, previous, "downgrade")

        assert catalog(scratch_url) == expected[previous], previous


ALEMBIC_VERSION = text("SELECT version_num FROM alembic_version")


def assert_the_downgrade_is_refused(url: str, revision: str, refusal: str) -> None:
    """A downgrade to `revision` raises `refusal` and leaves the database at head."""
    with pytest.raises(RuntimeError, match=refusal):
        migrate(url, revision, "downgrade")
    assert query_set(url, ALEMBIC_VERSION) == {(revisions_in_order()[-1],)}


def test_downgrade_below_0008_refuses_while_a_booking_holds_several_tickets(scratch_url):
    migrate(scratch_url, "head")
    engine = create_engine(scratch_url)
    with engine.begin() as conn:
        book_sql(conn, open_event(conn, 5), "a", 2)

    assert_the_downgrade_is_refused(
        scratch_url, "0007", r"below 0008: 1 booking\(s\) and 1 ledger entries concern several tickets"
    )
    engine.dispose()


def test_downgrade_below_0015_refuses_while_the_ledger_holds_an_event_updated_entry(scratch_url):
    migrate(scratch_url, "head")
    engine = create_engine(scratch_url)
    with engine.begin() as conn:
        promotion_sql(conn, open_event(conn, 5), "offer", 60)

    assert_the_downgrade_is_refused(scratch_url, "0014", r"below 0015: the ledger holds 1 event_updated entries")
    engine.dispose()


def test_downgrade_below_0018_refuses_while_the_ledger_holds_a_hold(scratch_url):
    migrate(scratch_url, "head")
    engine = create_engine(scratch_url)
    with engine.begin() as conn:
        event = open_event(conn, 5)
        conn.execute(text("UPDATE events SET hold_ttl_seconds = 60 WHERE id = :event"), {"event": event})
        book_sql(conn, event, "a")

    assert_the_downgrade_is_refused(scratch_url, "0017", r"below 0018: the ledger holds 1 hold entries")
    engine.dispose()


def test_upgrading_to_0008_gives_existing_bookings_one_ticket_and_waiting_ones_their_places(scratch_url):
    migrate(scratch_url, "0007")
    engine = create_engine(scratch_url)
    with engine.begin() as conn:
        event = conn.execute(text("INSERT INTO events (total_tickets, available_tickets) VALUES (1, 1) RETURNING id"))
        event = event.scalar_one()
        for call, user in [("book_ticket", user) for user in "abcd"] + [("cancel_booking", "c")]:
            conn.execute(text(f"SELECT * FROM {call}(:event, :user, 'v1')"), {"event": event, "user": user})
    migrate(scratch_url, "head")

    with engine.connect() as conn:
        places = [
            (row.user_id, row.quantity, row.waiting_position, row.tickets_ahead) for row in booking_rows(conn, event)
        ]
        assert queue_violations(conn, event) == []
    assert places == [("a", 1, None, None), ("b", 1, 1, 0), ("c", 1, None, None), ("d", 1, 2, 1)]
    assert audit.check(engine).problems == []
    engine.dispose()
