"""Events, bookings, and the two functions that book and cancel under the event lock.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

The booking rules live in `book_ticket` and `cancel_booking`; below are their first definitions, frozen.
Their current ones are app/booking/sql/<function>.sql (see app/database/functions.py).
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)

BOOK_TICKET = """
CREATE FUNCTION book_ticket(p_event_id uuid, p_user_id text)
RETURNS TABLE (outcome text, booking_id uuid, booking_status text, waiting_position integer,
               booking_created_at timestamptz, booking_updated_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    ev events%ROWTYPE;
BEGIN
    SELECT * INTO ev FROM events WHERE id = p_event_id FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'event_not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    booking_status := CASE WHEN ev.available_tickets > 0 THEN 'confirmed' ELSE 'waiting' END;
    INSERT INTO bookings AS b (event_id, user_id, status)
    VALUES (p_event_id, p_user_id, booking_status)
    ON CONFLICT (event_id, user_id) WHERE status <> 'cancelled' DO NOTHING
    RETURNING b.id, b.created_at, b.updated_at
    INTO booking_id, booking_created_at, booking_updated_at;
    IF NOT FOUND THEN
        outcome := 'already_booked';
        booking_status := NULL;
        RETURN NEXT;
        RETURN;
    END IF;
    UPDATE events
       SET available_tickets = available_tickets - (booking_status = 'confirmed')::int,
           waiting_count = waiting_count + (booking_status = 'waiting')::int,
           updated_at = now()
     WHERE id = p_event_id;
    -- New entries join at the back, so the position is the queue length including them.
    waiting_position := CASE WHEN booking_status = 'waiting' THEN ev.waiting_count + 1 END;
    outcome := 'ok';
    RETURN NEXT;
END
$$
"""

CANCEL_BOOKING = """
CREATE FUNCTION cancel_booking(p_event_id uuid, p_user_id text)
RETURNS TABLE (outcome text, booking_id uuid, booking_created_at timestamptz,
               booking_updated_at timestamptz, promoted_id uuid, promoted_user_id text,
               promoted_created_at timestamptz, promoted_updated_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    was_status text;
BEGIN
    PERFORM 1 FROM events WHERE id = p_event_id FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'event_not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT b.id, b.status INTO booking_id, was_status
      FROM bookings b
     WHERE b.event_id = p_event_id AND b.user_id = p_user_id AND b.status <> 'cancelled';
    IF NOT FOUND THEN
        outcome := CASE WHEN EXISTS (SELECT 1 FROM bookings b
                                      WHERE b.event_id = p_event_id AND b.user_id = p_user_id)
                        THEN 'already_cancelled' ELSE 'booking_not_found' END;
        RETURN NEXT;
        RETURN;
    END IF;
    UPDATE bookings b SET status = 'cancelled', updated_at = now()
     WHERE b.id = booking_id
    RETURNING b.created_at, b.updated_at INTO booking_created_at, booking_updated_at;
    IF was_status = 'confirmed' THEN
        -- The freed ticket goes to the oldest waiting entry, if any (strict FIFO by seq).
        UPDATE bookings b SET status = 'confirmed', updated_at = now()
         WHERE b.id = (SELECT w.id FROM bookings w
                        WHERE w.event_id = p_event_id AND w.status = 'waiting'
                        ORDER BY w.seq LIMIT 1)
        RETURNING b.id, b.user_id, b.created_at, b.updated_at
        INTO promoted_id, promoted_user_id, promoted_created_at, promoted_updated_at;
    END IF;
    UPDATE events
       SET available_tickets = available_tickets
                               + (was_status = 'confirmed' AND promoted_id IS NULL)::int,
           waiting_count = waiting_count
                           - (was_status = 'waiting' OR promoted_id IS NOT NULL)::int,
           updated_at = now()
     WHERE id = p_event_id;
    outcome := 'ok';
    RETURN NEXT;
END
$$
"""


def upgrade() -> None:
    _create_events()
    _create_bookings()
    op.execute(BOOK_TICKET)
    op.execute(CANCEL_BOOKING)


def downgrade() -> None:
    op.execute("DROP FUNCTION cancel_booking(uuid, text)")
    op.execute("DROP FUNCTION book_ticket(uuid, text)")
    op.drop_table("bookings")
    op.drop_table("events")


def _create_events() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Uuid, server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("total_tickets", sa.Integer, nullable=False),
        sa.Column("available_tickets", sa.Integer, nullable=False),
        sa.Column("waiting_count", sa.Integer, server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", TIMESTAMP, server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", TIMESTAMP, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.CheckConstraint("total_tickets BETWEEN 1 AND 1000000", name=op.f("ck_events_total_tickets_range")),
        sa.CheckConstraint(
            "available_tickets BETWEEN 0 AND total_tickets", name=op.f("ck_events_available_tickets_range")
        ),
        sa.CheckConstraint("waiting_count >= 0", name=op.f("ck_events_waiting_count_non_negative")),
        sa.CheckConstraint(
            "waiting_count = 0 OR available_tickets = 0", name=op.f("ck_events_waiting_only_when_sold_out")
        ),
        sa.CheckConstraint("name IS NULL OR char_length(name) BETWEEN 1 AND 200", name=op.f("ck_events_name_length")),
    )


def _create_bookings() -> None:
    op.create_table(
        "bookings",
        sa.Column("id", sa.Uuid, server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("seq", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("created_at", TIMESTAMP, server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", TIMESTAMP, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookings")),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_bookings_event_id_events"), ondelete="CASCADE"
        ),
        sa.CheckConstraint("status IN ('confirmed', 'waiting', 'cancelled')", name=op.f("ck_bookings_status_known")),
        sa.CheckConstraint("char_length(user_id) BETWEEN 1 AND 128", name=op.f("ck_bookings_user_id_length")),
    )
    op.create_index(
        "uq_bookings_one_active_per_user",
        "bookings",
        ["event_id", "user_id"],
        unique=True,
        postgresql_where=sa.text("status <> 'cancelled'"),
    )
    op.create_index(
        "ix_bookings_waiting_queue", "bookings", ["event_id", "seq"], postgresql_where=sa.text("status = 'waiting'")
    )
    op.create_index("ix_bookings_user_history", "bookings", ["event_id", "user_id", "seq"])
