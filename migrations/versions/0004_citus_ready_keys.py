"""Keys ready for sharding by event: the primary keys of bookings and booking_events lead with event_id,
and cancel_booking names the event in every statement.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

Citus (docs/scaling.md) would distribute the tables by event_id. It requires every primary and unique
key to contain the distribution column, and it runs a statement on one shard only when the statement
pins that column. So:
- bookings' key becomes (event_id, id), and booking_events' (event_id, seq). The latter makes the
  history index (event_id, seq) redundant: the key's own index serves the history query.
- cancel_booking updated bookings by id alone, which on a sharded table goes to every shard: both of
  its updates now say which event's booking they mean. On one PostgreSQL this only changes the index
  they use, (event_id, id) instead of (id).

The function is 0002's (the latest definition), with only those two conditions changed (`_pinned`
below; it fails loudly if that text ever stops matching).
"""

from alembic import context, op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

EVENT_PINNED_CONDITIONS = (
    ("WHERE b.id = booking_id", "WHERE b.event_id = p_event_id AND b.id = booking_id"),
    ("WHERE b.id = (SELECT w.id", "WHERE b.event_id = p_event_id AND b.id = (SELECT w.id"),
)


FUNCTIONS_FROM = "0002"  # the revision that last defined cancel_booking


def upgrade() -> None:
    _rekey("bookings", ["event_id", "id"])
    _rekey("booking_events", ["event_id", "seq"])
    op.drop_index("ix_booking_events_history", "booking_events")
    op.execute(_replacing(_pinned(_previous().CANCEL_BOOKING)))


def downgrade() -> None:
    op.execute(_replacing(_previous().CANCEL_BOOKING))
    op.create_index("ix_booking_events_history", "booking_events", ["event_id", "seq"])
    _rekey("booking_events", ["seq"])
    _rekey("bookings", ["id"])


def _rekey(table: str, columns: list[str]) -> None:
    op.drop_constraint(f"pk_{table}", table, type_="primary")
    op.create_primary_key(f"pk_{table}", table, columns)


def _previous():
    """The migration whose function definitions this one amends (its own text, not a copy)."""
    return context.script.get_revision(FUNCTIONS_FROM).module


def _pinned(definition: str) -> str:
    for old, new in EVENT_PINNED_CONDITIONS:
        if definition.count(old) != 1:
            raise RuntimeError(f"expected one {old!r} in cancel_booking's definition")
        definition = definition.replace(old, new)
    return definition


def _replacing(definition: str) -> str:
    return definition.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
