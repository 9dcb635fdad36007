"""An index for a user's bookings across events, newest first (GET /api/users/<userId>/bookings).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

The existing user index leads with event_id (one user at one event); listing a user's bookings at
every event by pages, keyset on bookings.seq, needs (user_id, seq), read backwards. Not a unique
index, so sharding by event (docs/scaling.md) does not require event_id in it; on Citus the query
goes to every shard.
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_bookings_user_bookings", "bookings", ["user_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_bookings_user_bookings", "bookings")
