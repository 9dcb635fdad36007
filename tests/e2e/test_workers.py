"""Killed and stopped gunicorn workers, caught in the middle of a booking.

To catch a request mid-transaction, the test holds the event's row lock: the booking then waits
inside its transaction, its Idempotency-Key already claimed, for as long as the test likes.
"""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from app.database.tables import bookings, idempotency_keys
from app.operations import audit
from tests.helpers.database import count_rows, session_exists, waiting_sessions
from tests.helpers.live_server import E2E_ADMIN_TOKEN, Gunicorn, call
from tests.helpers.waiting import wait_until

DEADLINE_S = 20


@pytest.fixture
def one_worker(database_url, tmp_path):
    """gunicorn with a single worker, so that the test knows which process serves its request."""
    server = Gunicorn(database_url, E2E_ADMIN_TOKEN, tmp_path / "gunicorn.log", workers=1)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def held_event(one_worker, engine):
    """An event whose row lock the test holds until it calls `release()`."""
    status, _, body = call(one_worker.base_url, "POST", "/api/initialize", {"totalTickets": 5}, E2E_ADMIN_TOKEN)
    assert status == 201
    conn = engine.connect()
    transaction = conn.begin()
    conn.execute(text("SELECT 1 FROM events WHERE id = :id FOR UPDATE"), {"id": body["event"]["id"]})
    yield body["event"]["id"], transaction.rollback
    conn.close()


def book(base_url: str, event_id: str, key: str):
    headers = {"Idempotency-Key": key}
    return call(base_url, "POST", "/api/book", {"eventId": event_id, "userId": "caught"}, headers=headers, timeout=30)


def answers(base_url: str) -> bool:
    try:
        return call(base_url, "GET", "/healthz", timeout=1)[0] == 200
    except OSError:  # refused, or accepted by the kernel and never served
        return False


def test_a_worker_killed_mid_transaction_leaves_nothing_behind_and_is_replaced(one_worker, held_event, engine):
    event_id, release = held_event
    with ThreadPoolExecutor(1) as pool:
        interrupted = pool.submit(book, one_worker.base_url, event_id, "killed-mid-way")
        wait_until(lambda: waiting_sessions(engine), "the booking waits inside its transaction")
        [orphan] = waiting_sessions(engine)
        [worker] = one_worker.workers()
        worker.send_signal(signal.SIGKILL)
        with pytest.raises(OSError):  # the connection is cut: the client cannot know what happened
            interrupted.result()
    release()
    # The orphaned transaction runs on, fails to send its result, and never commits.
    wait_until(lambda: not session_exists(engine, orphan), "the killed worker's session is gone")
    one_worker.wait_until_healthy()  # gunicorn has started a new worker

    assert count_rows(engine, bookings, event_id=event_id) == 0
    assert count_rows(engine, idempotency_keys, key="killed-mid-way") == 0
    status, headers, _ = book(one_worker.base_url, event_id, "killed-mid-way")  # the client's retry
    assert status == 201 and "Idempotent-Replayed" not in headers
    assert count_rows(engine, bookings, event_id=event_id) == 1
    assert audit.check(engine).ok


def test_sigterm_lets_the_request_in_flight_finish_while_refusing_new_ones(one_worker, held_event, engine):
    event_id, release = held_event
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(book, one_worker.base_url, event_id, "drained")
        wait_until(lambda: waiting_sessions(engine), "the booking waits inside its transaction")
        one_worker.process.send_signal(signal.SIGTERM)
        wait_until(lambda: not answers(one_worker.base_url), "the server stops taking new requests")
        assert one_worker.process.poll() is None  # still draining
        release()
        status, _, body = in_flight.result()

    assert status == 201 and body["booking"]["userId"] == "caught"
    assert one_worker.process.wait(timeout=DEADLINE_S) == 0
    assert count_rows(engine, bookings, event_id=event_id) == 1


QUICK_STOP_S = 10  # well under the graceful timeout (30 s), which a lost SIGTERM would run out


def test_a_sigterm_while_a_worker_boots_stops_the_server_at_once(database_url, tmp_path):
    server = Gunicorn(database_url, E2E_ADMIN_TOKEN, tmp_path / "gunicorn.log", workers=1)
    server.start()
    try:
        killed = server.workers()[0]
        killed.kill()
        wait_until(lambda: [w for w in server.workers() if w.pid != killed.pid], "the master forks a new worker")
        started = time.monotonic()
        server.stop()  # the new worker is still booting
        stopped_after = time.monotonic() - started
    finally:
        server.kill()

    assert stopped_after < QUICK_STOP_S, server.log()
