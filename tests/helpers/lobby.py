"""The fair sale opening in tests (issue 27): an event's opening brought to now, its draw run to the end,
and what the draw left in the tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

from app.booking.lobby import Draws, draw_lobby

# The opening moved to now by the database's clock, as if the time had come (the clock cannot move).
OPEN_NOW = text("UPDATE events SET sales_open_at = clock_timestamp() WHERE id = :event_id")
# The bookings the draw booked, in the order it booked them (a new seq each, under the lock), with their ranks.
DRAWN = text("""
SELECT b.user_id, b.status, b.lobby_rank FROM bookings b
 WHERE b.event_id = :event_id AND b.lobby_rank IS NOT NULL
 ORDER BY b.seq
""")


def later(hours: float = 1) -> str:
    """An RFC 3339 time `hours` from now."""
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def open_now(engine: Engine, event_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(OPEN_NOW, {"event_id": event_id})


def draw(engine: Engine, event_id: str) -> Draws:
    """The event's draw run to its end, as the lobby-draw unit runs it."""
    return draw_lobby(engine.execution_options(isolation_level="AUTOCOMMIT"), event_id)


def drawn(engine: Engine, event_id: str) -> list[tuple[str, str, int]]:
    """(user, status, rank) of each booking the draw booked, in the order it booked them."""
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(DRAWN, {"event_id": event_id})]
