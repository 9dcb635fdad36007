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

`CANCEL_BOOKING` is the definition this revision installs and `CANCEL_BOOKING_BEFORE` the one its
downgrade restores (0002's), both frozen in full (app/database/functions.py). They differ only in
those two conditions.
"""

from alembic import op

from app.database.functions import create_or_replace

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

CANCEL_BOOKING = """
CREATE OR REPLACE FUNCTION cancel_booking(p_event_id uuid, p_user_id text, p_request_id text)
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
     WHERE b.event_id = p_event_id AND b.id = booking_id
    RETURNING b.created_at, b.updated_at INTO booking_created_at, booking_updated_at;
    IF was_status = 'confirmed' THEN
        -- The freed ticket goes to the oldest waiting entry, if any (strict FIFO by seq).
        UPDATE bookings b SET status = 'confirmed', updated_at = now()
         WHERE b.event_id = p_event_id AND b.id = (SELECT w.id FROM bookings w
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
    -- One statement for both rows (the cancellation, then any promotion): one less inside the lock.
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id)
    SELECT p_event_id, change.booking, change.who, change.kind, p_request_id
      FROM (VALUES (1, booking_id, p_user_id, 'cancelled'),
                   (2, promoted_id, promoted_user_id, 'promoted')) AS change (step, booking, who, kind)
     WHERE change.booking IS NOT NULL
     ORDER BY change.step;
    outcome := 'ok';
    RETURN NEXT;
END
$$;
"""

CANCEL_BOOKING_BEFORE = """
CREATE OR REPLACE FUNCTION cancel_booking(p_event_id uuid, p_user_id text, p_request_id text)
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
    -- One statement for both rows (the cancellation, then any promotion): one less inside the lock.
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id)
    SELECT p_event_id, change.booking, change.who, change.kind, p_request_id
      FROM (VALUES (1, booking_id, p_user_id, 'cancelled'),
                   (2, promoted_id, promoted_user_id, 'promoted')) AS change (step, booking, who, kind)
     WHERE change.booking IS NOT NULL
     ORDER BY change.step;
    outcome := 'ok';
    RETURN NEXT;
END
$$;
"""


def upgrade() -> None:
    _rekey("bookings", ["event_id", "id"])
    _rekey("booking_events", ["event_id", "seq"])
    op.drop_index("ix_booking_events_history", "booking_events")
    create_or_replace(CANCEL_BOOKING)


def downgrade() -> None:
    create_or_replace(CANCEL_BOOKING_BEFORE)
    op.create_index("ix_booking_events_history", "booking_events", ["event_id", "seq"])
    _rekey("booking_events", ["seq"])
    _rekey("bookings", ["id"])


def _rekey(table: str, columns: list[str]) -> None:
    op.drop_constraint(f"pk_{table}", table, type_="primary")
    op.create_primary_key(f"pk_{table}", table, columns)
