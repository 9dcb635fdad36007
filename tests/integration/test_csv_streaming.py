"""A CSV export streams: the worker's memory stays flat while a long list goes out.

The list is seeded in SQL (ROWS waiting entries in one statement) in a database of this module's own,
then read through the app as a client reads it, chunk by chunk, while the process's resident memory
is sampled. Read whole instead of page by page, the rows alone would take several times the margin
allowed here; streamed, the worker holds one page of rows and of text at a time.
"""

from __future__ import annotations

import csv
import io

import psutil
import pytest

from tests.helpers.api import ADMIN_TOKEN
from tests.helpers.database import seeded_event

ROWS = 300_000
SAMPLES = 30
# One page of rows and of text, and the request's first use of its code: ~3 MB here. Read whole, the
# driver holds all 300 000 rows at the first chunk: ~70 MB more.
GROWTH_ALLOWED_MB = 25

SEED = [
    """INSERT INTO events (name, total_tickets, available_tickets, waiting_count, waiting_tickets,
                           queue_joined_entries, queue_joined_tickets)
       VALUES ('streamed', 1, 0, :rows, :rows, :rows, :rows) RETURNING id""",
    "INSERT INTO bookings (event_id, user_id, status) VALUES (:event_id, 'holder', 'confirmed')",
    """INSERT INTO bookings (event_id, user_id, status, queue_ordinal, queue_tickets_before)
       SELECT :event_id, 'waiter-' || n, 'waiting', n, n - 1 FROM generate_series(1, :rows) AS n""",
]


@pytest.fixture(scope="module")
def long_queue(server_url):
    """(the URL of a database of its own, the id of its event with ROWS waiting entries)."""
    with seeded_event(server_url, SEED, ROWS) as seeded:
        yield seeded


def test_waiting_list_csv_streams_in_flat_memory(long_queue, make_app):
    url, event_id = long_queue
    app = make_app(database_url=url)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Accept": "text/csv"}
    process, lines, tail = psutil.Process(), 0, ""
    rss = [process.memory_info().rss]  # before the request: the test client reads its first chunk at once
    response = app.test_client().get(f"/api/events/{event_id}/waiting-list", headers=headers, buffered=False)
    for chunk in response.response:
        lines += chunk.count(b"\n")
        tail = (tail + chunk.decode())[-200:]
        if lines >= (len(rss) - 1) * ROWS // SAMPLES:
            rss.append(process.memory_info().rss)
    response.close()

    last = list(csv.reader(io.StringIO(tail.splitlines()[-1])))[0]
    assert lines == ROWS + 1 and last[1:5] == [f"waiter-{ROWS}", "1", str(ROWS), str(ROWS - 1)]
    growth_mb = [round((sample - rss[0]) / 2**20, 1) for sample in rss]
    assert max(growth_mb) < GROWTH_ALLOWED_MB, growth_mb
