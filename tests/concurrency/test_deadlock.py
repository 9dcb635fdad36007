"""A real deadlock between a booking and another transaction: PostgreSQL aborts the booking, which
the service runs again, so the client sees a success instead of an error."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text

from app.extensions import APPLICATION_NAME

WAIT_DEADLINE_S = 10

WAITING_SESSIONS = text("""
SELECT count(*) FROM pg_stat_activity
 WHERE application_name = :name AND datname = current_database() AND wait_event_type = 'Lock'
""")


def wait_until_the_service_waits_for_a_lock(conn) -> None:
    deadline = time.monotonic() + WAIT_DEADLINE_S
    while conn.execute(WAITING_SESSIONS, {"name": APPLICATION_NAME}).scalar_one() == 0:
        assert time.monotonic() < deadline, "the booking never waited for the lock"
        time.sleep(0.02)  # polling interval, not ordering


def test_a_booking_aborted_by_a_deadlock_is_retried_and_succeeds(app, engine, new_event, capsys):
    event = new_event(1)
    booking = {"eventId": event["id"], "userId": "deadlocked"}
    headers = {"Idempotency-Key": "deadlock"}
    with engine.connect() as other, engine.connect() as observer, ThreadPoolExecutor(1) as pool:
        with other.begin() as transaction:
            other.execute(text("SELECT 1 FROM events WHERE id = :e FOR UPDATE"), {"e": event["id"]})
            response = pool.submit(app.test_client().post, "/api/book", json=booking, headers=headers)
            # The booking has claimed its key and waits for the event, which this transaction holds.
            wait_until_the_service_waits_for_a_lock(observer)
            # Now wait for the key the booking holds: a cycle. PostgreSQL breaks it by aborting the
            # booking, which waited first; this transaction then gets the key, and lets go of both.
            other.execute(text("INSERT INTO idempotency_keys (key, fingerprint) VALUES ('deadlock', 'x')"))
            transaction.rollback()

        assert response.result().status_code == 201
    retries = [line for line in capsys.readouterr().out.splitlines() if "transaction_retried" in line]
    assert len(retries) == 1 and "40P01" in retries[0]
