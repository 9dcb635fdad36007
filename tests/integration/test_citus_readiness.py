"""The schema and the SQL are ready for Citus with `event_id` as the distribution column (docs/scaling.md).

Checked here, on what the running code really does:
- every statement the service issues to book, cancel and report reaches one event's rows only, and the
  booking functions get the event's id as the argument Citus would route them by;
- so does every statement inside the booking functions, read back from the database;
- every unique key and foreign key contains the distribution column, which Citus requires;
- nothing leaves session state on a connection, which PgBouncer's transaction pooling forbids.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from tests.helpers.database import drop_database, migrate, scratch_database
from tests.helpers.sql_checks import first_arguments, plpgsql_statements, session_state, unpinned_accesses

# Each table's distribution column. `events` is distributed by its id and the event's rows of other
# tables by their event_id, in one colocation group, so one event's rows live on one shard.
# Idempotency keys are global to the service, so they are distributed by key (docs/scaling.md).
DISTRIBUTION = {
    "events": "id",
    "bookings": "event_id",
    "booking_events": "event_id",
    "queue_departures": "event_id",
    "ticket_types": "event_id",
    "lobby_ranks": "event_id",
    "webhook_messages": "event_id",
    "idempotency_keys": "key",
}
# Reference tables: small, global, copied to every node. A distributed table may refer to one by any
# column; a reference table may refer to no distributed table.
REFERENCE = {"webhooks", "webhook_dispatchers"}
BOOKING_FUNCTIONS = {"book_ticket", "book_many", "cancel_booking"}
# Called by the booking functions, not by the service, and checked the same way.
PLPGSQL_FUNCTIONS = BOOKING_FUNCTIONS | {"promote_waiting", "update_event", "cancel_event", "draw_lobby"}
DISTRIBUTION_ARGUMENT = "p_event_id"

FUNCTION_DEFINITIONS = text("""
SELECT p.proname, pg_get_functiondef(p.oid) AS definition, p.proargnames[1] AS first_argument
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'public' AND p.proname = ANY(:names)
""")
TABLES = text("""
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> 'alembic_version'
""")
UNIQUE_INDEXES = text("""
SELECT t.relname AS table_name, i.relname AS index_name,
       array(SELECT a.attname FROM pg_attribute a
              WHERE a.attrelid = t.oid AND a.attnum = ANY(x.indkey)) AS columns
  FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE n.nspname = 'public' AND x.indisunique AND t.relname <> 'alembic_version'
""")
FOREIGN_KEYS = text("""
SELECT c.conname, c.conrelid::regclass::text AS table_name, c.confrelid::regclass::text AS referenced,
       array(SELECT a.attname FROM unnest(c.conkey) k JOIN pg_attribute a
               ON a.attrelid = c.conrelid AND a.attnum = k) AS columns,
       array(SELECT a.attname FROM unnest(c.confkey) k JOIN pg_attribute a
               ON a.attrelid = c.confrelid AND a.attnum = k) AS referenced_columns
  FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
 WHERE n.nspname = 'public' AND c.contype = 'f'
""")


@pytest.fixture
def exercise_every_booking_path(client, admin_headers):
    """Book (with and without a key), queue, refuse a double booking, cancel with a promotion, read
    both statuses and the history."""

    def exercise(event_id: str) -> None:
        for user in ("holder", "waiter", "waiter"):
            client.post("/api/book", json={"eventId": event_id, "userId": user})
        client.post("/api/book", json={"eventId": event_id, "userId": "keyed"}, headers={"Idempotency-Key": event_id})
        client.post("/api/cancel", json={"eventId": event_id, "userId": "holder"})
        client.post("/api/cancel", json={"eventId": event_id, "userId": "nobody"})
        client.get(f"/api/status/{event_id}")
        client.get(f"/api/booking-status/{event_id}/waiter")
        client.get(f"/api/booking-status/{event_id}/holder")
        client.get(f"/api/events/{event_id}/history", headers=admin_headers)

    return exercise


def query_rows(engine, statement, **params) -> list:
    with engine.connect() as conn:
        return conn.execute(statement, params).all()


def test_every_statement_of_booking_cancelling_and_reporting_reaches_one_events_rows(
    new_event, issued, exercise_every_booking_path
):
    event_id = new_event(1)["id"]
    issued.clear()  # creating the event is not a booking path

    exercise_every_booking_path(event_id)

    touching = [sql for sql in issued if "events" in sql or "bookings" in sql or "book" in sql]
    assert len(touching) >= 9, issued  # the five paths ran and were seen
    assert {sql: unpinned_accesses(sql, DISTRIBUTION) for sql in issued} == {sql: [] for sql in issued}


def test_the_booking_functions_are_called_with_the_event_as_first_argument(
    new_event, issued, exercise_every_booking_path
):
    event_id = new_event(1)["id"]

    exercise_every_booking_path(event_id)

    calls = [call for sql in issued for call in first_arguments(sql, BOOKING_FUNCTIONS)]
    assert {name for name, _ in calls} == BOOKING_FUNCTIONS
    assert {argument for _, argument in calls} == {event_id}


def test_every_statement_inside_the_booking_functions_reaches_one_events_rows(engine):
    functions = query_rows(engine, FUNCTION_DEFINITIONS, names=sorted(PLPGSQL_FUNCTIONS))
    assert {row.proname for row in functions} == PLPGSQL_FUNCTIONS

    for row in functions:
        statements = plpgsql_statements(row.definition)
        unpinned = {sql: unpinned_accesses(sql, DISTRIBUTION, frozenset({DISTRIBUTION_ARGUMENT})) for sql in statements}
        assert unpinned == {sql: [] for sql in statements}, row.proname
        assert row.first_argument == DISTRIBUTION_ARGUMENT, row.proname


def test_the_waiting_place_query_reaches_one_events_rows(engine):
    (body,) = query_rows(engine, text("SELECT prosrc FROM pg_proc WHERE proname = 'waiting_place'"))[0]

    assert unpinned_accesses(body, DISTRIBUTION, frozenset({DISTRIBUTION_ARGUMENT})) == []


def test_every_table_has_a_distribution_column_or_is_a_reference_table(engine):
    assert {row.relname for row in query_rows(engine, TABLES)} == set(DISTRIBUTION) | REFERENCE


def test_every_unique_key_contains_the_distribution_column(engine):
    for row in query_rows(engine, UNIQUE_INDEXES):
        if row.table_name not in REFERENCE:
            assert DISTRIBUTION[row.table_name] in row.columns, row.index_name


def test_every_foreign_key_pairs_the_distribution_columns(engine):
    keys = query_rows(engine, FOREIGN_KEYS)
    assert keys, "bookings refer to events"
    for row in keys:
        assert row.table_name not in REFERENCE, row.conname
        if row.referenced in REFERENCE:
            continue
        pairs = set(zip(row.columns, row.referenced_columns, strict=True))
        assert (DISTRIBUTION[row.table_name], DISTRIBUTION[row.referenced]) in pairs, row.conname


def test_no_statement_leaves_session_state_for_pgbouncer_to_leak(
    client, new_event, issued, exercise_every_booking_path
):
    event_id = new_event(1)["id"]
    exercise_every_booking_path(event_id)
    client.get("/readyz")

    assert {sql: session_state(sql) for sql in issued} == {sql: [] for sql in issued}


def test_downgrading_below_0004_restores_the_keys_and_function_of_0003(server_url):
    url = scratch_database(server_url)
    try:
        migrate(url, "head")
        migrate(url, "0003", "downgrade")
        engine = create_engine(url)
        keys = {row.index_name: row.columns for row in query_rows(engine, UNIQUE_INDEXES)}
        cancel = next(row for row in query_rows(engine, FUNCTION_DEFINITIONS, names=["cancel_booking"]))
        engine.dispose()
    finally:
        drop_database(server_url, url)

    assert (keys["pk_bookings"], keys["pk_booking_events"]) == (["id"], ["seq"])
    assert "b.event_id = p_event_id AND b.id" not in cancel.definition
