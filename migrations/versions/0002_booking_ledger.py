"""The booking ledger: every state change appended, in the same transaction, by the booking functions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

`booking_events` is append-only: `book_ticket` and `cancel_booking` add a row for each booking they
create, cancel or promote, under the event lock, so `seq` orders an event's rows as its changes
happened. `flask check` replays it from empty and compares the result with the current rows.

The functions gain a third argument, the request id that the ledger records. PostgreSQL identifies a
function by its argument types, so `CREATE OR REPLACE` would add an overload beside the old one
instead of replacing it: the two-argument versions are dropped, and the downgrade restores them from
0001 unchanged (`BOOK_TICKET_BEFORE`, `CANCEL_BOOKING_BEFORE`: frozen copies of 0001's, as
app/database/functions.py explains). The rules themselves are 0001's, line for line; only the INSERTs
into the ledger are new.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BOOK_TICKET = """
CREATE FUNCTION book_ticket(p_event_id uuid, p_user_id text, p_request_id text)
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
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id)
    VALUES (p_event_id, booking_id, p_user_id,
            CASE WHEN booking_status = 'confirmed' THEN 'booked' ELSE 'waitlisted' END, p_request_id);
    -- New entries join at the back, so the position is the queue length including them.
    waiting_position := CASE WHEN booking_status = 'waiting' THEN ev.waiting_count + 1 END;
    outcome := 'ok';
    RETURN NEXT;
END
$$
"""

CANCEL_BOOKING = """
CREATE FUNCTION cancel_booking(p_event_id uuid, p_user_id text, p_request_id text)
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
$$
"""

# What the downgrade restores: 0001's definitions.
BOOK_TICKET_BEFORE = """
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

CANCEL_BOOKING_BEFORE = """
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

# Bookings made before the ledger existed get a history that leads to their current state, marked
# with this request id: each cancelled booking booked and cancelled at once, then the confirmed ones,
# then the waiting ones, each group oldest first. Replayed, it ends in exactly today's rows.
BACKFILL_REQUEST_ID = "migration-0002-backfill"
BACKFILL = f"""
INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, created_at)
SELECT event_id, id, user_id, kind, '{BACKFILL_REQUEST_ID}', at
  FROM (SELECT b.event_id, b.id, b.user_id, b.seq, b.created_at AS at, 'booked' AS kind, 0 AS grp, 0 AS step
          FROM bookings b WHERE b.status = 'cancelled'
        UNION ALL
        SELECT b.event_id, b.id, b.user_id, b.seq, b.updated_at, 'cancelled', 0, 1
          FROM bookings b WHERE b.status = 'cancelled'
        UNION ALL
        SELECT b.event_id, b.id, b.user_id, b.seq, b.created_at,
               CASE b.status WHEN 'confirmed' THEN 'booked' ELSE 'waitlisted' END,
               CASE b.status WHEN 'confirmed' THEN 1 ELSE 2 END, 0
          FROM bookings b WHERE b.status <> 'cancelled') AS history
 ORDER BY event_id, grp, seq, step
"""


def upgrade() -> None:
    op.create_table(
        "booking_events",
        sa.Column("seq", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("booking_id", sa.Uuid, nullable=False),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("request_id", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_booking_events")),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_booking_events_event_id_events"), ondelete="CASCADE"
        ),
        sa.CheckConstraint(
            "kind IN ('booked', 'waitlisted', 'cancelled', 'promoted')", name=op.f("ck_booking_events_kind_known")
        ),
    )
    op.create_index("ix_booking_events_history", "booking_events", ["event_id", "seq"])
    op.execute(BACKFILL)
    op.execute("DROP FUNCTION cancel_booking(uuid, text)")
    op.execute("DROP FUNCTION book_ticket(uuid, text)")
    op.execute(BOOK_TICKET)
    op.execute(CANCEL_BOOKING)


def downgrade() -> None:
    op.execute("DROP FUNCTION cancel_booking(uuid, text, text)")
    op.execute("DROP FUNCTION book_ticket(uuid, text, text)")
    op.execute(BOOK_TICKET_BEFORE)
    op.execute(CANCEL_BOOKING_BEFORE)
    op.drop_table("booking_events")
