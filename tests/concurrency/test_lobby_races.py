"""The draw under concurrency (issue 27): two processes drawing the same lobby at once; bookings and cancels
arriving while the draw starts; a drawing process killed mid-step and another taking over. In each, every
entry is booked once, in rank order, and `flask check` finds nothing wrong."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine, text

from app.booking.services import BookTicket, CancelBooking
from app.database.group_commit import Batcher
from tests.helpers.database import problems_after
from tests.helpers.lobby import draw, drawn, later, open_now
from tests.helpers.races import race
from tests.helpers.waiting import wait_until

# A lobby of :entries users (one to four tickets each), filled in one statement.
FILL = text("""
SELECT count(*) FROM book_many(:event_id, ARRAY(SELECT 'user-' || n FROM generate_series(1, :entries) n),
                               array_fill('fill'::text, ARRAY[:entries]),
                               ARRAY(SELECT 1 + n % 4 FROM generate_series(1, :entries) n))
""")
OPEN_EVENT = text("""
INSERT INTO events (total_tickets, available_tickets, sales_open_at) VALUES (:total, :total, :opens) RETURNING id
""")
RANKED = text("SELECT r.booking_id FROM lobby_ranks r WHERE r.event_id = :event_id AND r.rank = :rank")
LOCK_BOOKING = text("SELECT 1 FROM bookings WHERE event_id = :event_id AND id = :booking_id FOR UPDATE")
DRAW_WAITING = text("""
SELECT pid FROM pg_stat_activity
 WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%draw_lobby(%'
""")
# Each user's latest booking's status.
STATUSES = text(
    "SELECT DISTINCT ON (user_id) user_id, status FROM bookings WHERE event_id = :event_id ORDER BY user_id, seq DESC"
)
RANK_STEP = text("SELECT ranked FROM draw_lobby(:event_id, 'race', 250)")


@pytest.fixture
def lobby(engine):
    """An event of `total` tickets whose lobby holds `entries` users, opened now (nobody has drawn it yet)."""

    def fill(entries: int, total: int) -> str:
        with engine.begin() as conn:
            event_id = str(conn.execute(OPEN_EVENT, {"total": total, "opens": later()}).scalar_one())
            conn.execute(FILL, {"event_id": event_id, "entries": entries})
        open_now(engine, event_id)
        return event_id

    return fill


def test_two_processes_drawing_at_once_book_every_entry_once_in_rank_order(lobby, engine, race_engine):
    event_id = lobby(entries=1000, total=600)

    race([lambda: draw(race_engine, event_id), lambda: draw(race_engine, event_id)])

    order = drawn(engine, event_id)
    assert [rank for _, _, rank in order] == list(range(1, 1001))
    assert problems_after(engine, event_id, "SELECT 1") == []


def test_bookings_and_cancels_while_the_draw_starts_leave_a_valid_draw(lobby, engine, race_engine):
    event_id = lobby(entries=400, total=300)
    batcher = Batcher()
    books = [BookTicket(event_id, f"late-{n}", "race").alone for n in range(20)]
    cancels = [CancelBooking(event_id, f"user-{n}", "race").alone for n in range(1, 400, 20)]

    race([lambda: draw(race_engine, event_id)] + [lambda job=job: job(race_engine, batcher) for job in books + cancels])
    draw(engine, event_id)  # what arrived after the first draw's last step, if it finished first

    with engine.connect() as conn:
        statuses = dict(conn.execute(STATUSES, {"event_id": event_id}).all())
    assert {statuses[f"user-{n}"] for n in range(1, 400, 20)} == {"cancelled"}
    assert "lobby" not in statuses.values()
    assert {statuses[f"late-{n}"] for n in range(20)} <= {"confirmed", "waiting"}
    assert problems_after(engine, event_id, "SELECT 1") == []


def test_a_process_killed_mid_draw_leaves_the_rest_to_the_next_without_booking_anyone_twice(
    lobby, engine, database_url
):
    event_id = lobby(entries=10, total=5)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        assert conn.execute(RANK_STEP, {"event_id": event_id}).scalar_one() == 10
    doomed = create_engine(database_url, pool_size=1)
    with engine.connect() as blocker, blocker.begin():
        third = blocker.execute(RANKED, {"event_id": event_id, "rank": 3}).scalar_one()
        blocker.execute(LOCK_BOOKING, {"event_id": event_id, "booking_id": third})
        step = threading.Thread(target=draw, args=(doomed, event_id))
        step.start()  # books ranks 1 and 2, then waits for the third's row
        wait_until(lambda: waiting_draws(engine), "the draw waits mid-step")
        blocker.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": waiting_draws(engine)[0]})
    step.join()
    doomed.dispose()

    draw(engine, event_id)

    assert [rank for _, _, rank in drawn(engine, event_id)] == list(range(1, 11))
    assert problems_after(engine, event_id, "SELECT 1") == []


def waiting_draws(engine) -> list[int]:
    """The backends of draw steps that wait for a lock (read afresh: a transaction keeps its first view)."""
    with engine.connect() as conn:
        return list(conn.execute(DRAW_WAITING).scalars())
