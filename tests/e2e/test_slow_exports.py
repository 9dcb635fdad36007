"""Slow CSV readers against the real server: clients that start an export, read a little and then stop
reading hold no database connection, so the other requests keep the pool (app/booking/organisers.py
reads an export page by page)."""

from __future__ import annotations

import contextlib
import socket

import pytest

from tests.helpers.database import seeded_event
from tests.helpers.live_server import E2E_ADMIN_TOKEN, Gunicorn, call

# About 9 MB of CSV: more than the socket buffers between the server and a reader that stopped reading
# hold, so the server is left with most of the export to send.
ROWS = 60_000
POOL = 2  # DB_POOL_SIZE of the one worker
READERS = 4 * POOL
STATUS_READS = 5
RECEIVE_BUFFER = 4096
READ_BEFORE_PAUSE = 1024

SEED = [
    """INSERT INTO events (name, total_tickets, available_tickets)
       VALUES ('exported', :rows, 0) RETURNING id""",
    """INSERT INTO bookings (event_id, user_id, status)
       SELECT :event_id, 'holder-' || n, 'confirmed' FROM generate_series(1, :rows) AS n""",
]


@pytest.fixture(scope="module")
def big_event(server_url):
    """(the URL of a database of its own, the id of its event with ROWS bookings)."""
    with seeded_event(server_url, SEED, ROWS) as seeded:
        yield seeded


@pytest.fixture
def server(big_event, tmp_path):
    url, _ = big_event
    server = Gunicorn(url, E2E_ADMIN_TOKEN, tmp_path / "gunicorn.log", workers=1, settings={"DB_POOL_SIZE": str(POOL)})
    server.start()
    yield server
    server.stop()


def slow_reader(readers: contextlib.ExitStack, port: int, event_id: str) -> bytes:
    """A client that asks for the bookings as CSV, reads READ_BEFORE_PAUSE bytes, then reads no more
    (its socket stays open in `readers`); its status line."""
    sock = readers.enter_context(socket.socket())
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)  # before connecting: a small window
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"GET /api/events/{event_id}/bookings HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/csv\r\n"
        f"Authorization: Bearer {E2E_ADMIN_TOKEN}\r\n\r\n".encode()
    )
    received = sock.recv(READ_BEFORE_PAUSE)
    while received and len(received) < READ_BEFORE_PAUSE and (more := sock.recv(READ_BEFORE_PAUSE)):
        received += more
    return received.split(b"\r\n", 1)[0]


def test_slow_csv_readers_leave_the_pool_to_status_reads(server, big_event):
    _, event_id = big_event
    with contextlib.ExitStack() as readers:
        exports = [slow_reader(readers, server.port, event_id) for _ in range(READERS)]
        statuses = [call(server.base_url, "GET", f"/api/status/{event_id}", timeout=15)[0] for _ in range(STATUS_READS)]
    assert exports == [b"HTTP/1.1 200 OK"] * READERS
    assert statuses == [200] * STATUS_READS
