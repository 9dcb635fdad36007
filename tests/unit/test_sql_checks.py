"""The SQL checks behind the Citus-readiness and PgBouncer tests, on statements whose verdict is known."""

import pytest

from tests.helpers.sql_checks import first_arguments, plpgsql_statements, session_state, unpinned_accesses

KEYS = {"events": "id", "bookings": "event_id"}


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM bookings WHERE event_id = 'e' AND user_id = 'u'",
        "UPDATE bookings b SET status = 'x' WHERE b.event_id = $1 AND b.id = $2",
        "SELECT * FROM events e JOIN bookings b ON b.event_id = e.id WHERE e.id = '1'::uuid",
        "SELECT (SELECT count(*) FROM bookings w WHERE w.event_id = e.id) FROM events e WHERE e.id = 'e'",
        "INSERT INTO bookings (event_id, user_id, status) VALUES ('e', 'u', 'waiting')",
        "SELECT 1",
    ],
    ids=["constant", "parameter", "join-through-pinned-event", "correlated-subquery", "insert", "no-table"],
)
def test_statements_reaching_one_event_only_are_pinned(sql):
    assert unpinned_accesses(sql, KEYS) == []


@pytest.mark.parametrize(
    ("sql", "unpinned"),
    [
        ("UPDATE bookings b SET status = 'x' WHERE b.id = $1", ["bookings"]),
        ("SELECT * FROM bookings WHERE event_id = 'e' OR user_id = 'u'", ["bookings"]),
        ("SELECT * FROM bookings b JOIN events e ON b.event_id = e.id", ["bookings", "events"]),
        (
            "SELECT * FROM events WHERE id IN (SELECT event_id FROM bookings WHERE user_id = 'u')",
            ["events", "bookings"],
        ),
        ("INSERT INTO bookings (user_id, status) VALUES ('u', 'waiting')", ["bookings"]),
    ],
    ids=["by-booking-id", "or", "join-without-event", "listing-across-events", "insert-without-event"],
)
def test_statements_that_may_reach_several_events_are_flagged(sql, unpinned):
    assert sorted(unpinned_accesses(sql, KEYS)) == sorted(unpinned)


def test_a_functions_distribution_argument_pins_like_a_constant():
    sql = "SELECT * FROM bookings WHERE event_id = p_event_id"
    assert unpinned_accesses(sql, KEYS) == ["bookings"]
    assert unpinned_accesses(sql, KEYS, pins=frozenset({"p_event_id"})) == []


def test_plpgsql_bodies_split_into_statements_and_expressions():
    body = """CREATE FUNCTION f(p_event_id uuid) RETURNS text LANGUAGE plpgsql AS $$
    DECLARE n int;
    BEGIN
        PERFORM 1 FROM events WHERE id = p_event_id FOR UPDATE;
        n := (SELECT count(*) FROM bookings);
        RETURN 'ok';
    END $$"""
    statements = plpgsql_statements(body)
    assert statements[0] == "SELECT 1 FROM events WHERE id = p_event_id FOR UPDATE"
    assert [unpinned_accesses(s, KEYS, frozenset({"p_event_id"})) for s in statements[:2]] == [[], ["bookings"]]


def test_session_state_that_transaction_pooling_would_leak_is_named():
    sql = (
        "SET statement_timeout = 5; SET LOCAL lock_timeout = 1; SELECT pg_advisory_xact_lock(1);"
        "SELECT pg_advisory_lock(1); PREPARE p AS SELECT 1; LISTEN channel"
    )
    assert session_state(sql) == ["SET statement_timeout", "pg_advisory_lock", "PrepareStmt", "ListenStmt"]


def test_first_arguments_of_calls_are_read_through_casts():
    sql = "SELECT * FROM book_ticket('0b5e'::uuid, 'u'), other('x')"
    assert first_arguments(sql, {"book_ticket"}) == [("book_ticket", "0b5e")]
