"""A real deadlock between a booking and another transaction: PostgreSQL aborts the booking, which
the service runs again, so the client sees a success instead of an error."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text

from tests.helpers.database import waiting_sessions
from tests.helpers.waiting import wait_until


def test_a_booking_aborted_by_a_deadlock_is_retried_and_succeeds(app, engine, new_event, stored_key, capsys):
    event = new_event(1)
    booking = {"eventId": event["id"], "userId": "deadlocked"}
    headers = {"Idempotency-Key": "deadlock"}
    with engine.connect() as other, ThreadPoolExecutor(1) as pool:
        with other.begin() as transaction:
            other.execute(text("SELECT 1 FROM events WHERE id = :e FOR UPDATE"), {"e": event["id"]})
            response = pool.submit(app.test_client().post, "/api/book", json=booking, headers=headers)
            wait_until(lambda: waiting_sessions(engine), "the booking, its key claimed, waits for the event")
            # Now wait for the key the booking holds: a cycle. PostgreSQL breaks it by aborting the
            # booking, which waited first; this transaction then gets the key, and lets go of both.
            other.execute(
                text("INSERT INTO idempotency_keys (key, fingerprint) VALUES (:key, 'x')"),
                {"key": stored_key("deadlock")},
            )
            transaction.rollback()

        assert response.result().status_code == 201
    retries = [line for line in capsys.readouterr().out.splitlines() if "transaction_retried" in line]
    assert len(retries) == 1 and "40P01" in retries[0]
