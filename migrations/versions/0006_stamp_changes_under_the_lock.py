"""Each change is stamped when the event lock is held: clock_timestamp() after the lock, not now().

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

now() is the transaction's start, taken before the wait for the event lock, so among concurrent
bookings createdAt went backwards along the waiting list (issue 11). book_ticket and cancel_booking
now read clock_timestamp() once the lock is held and stamp every row of the change with it: the
booking, the event and the ledger entries. No new statement runs under the lock.

Frozen copies (app/database/functions.py): `BOOK_TICKET`, `CANCEL_BOOKING` are app/booking/sql/'s files
as this revision installs them; the `_BEFORE` ones are what the downgrade restores (0002's and 0004's).
"""

from app.database.functions import create_or_replace

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BOOK_TICKET = """
-- book_ticket: give the user a ticket if one is left, else a place at the back of the waiting list,
-- and append the change to the ledger (booking_events) with the request id it is given (the server's own
-- id for the request, never a client's X-Request-ID: app/web/request_context.py).
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). The service calls it as one statement, so a booking costs one round trip
-- while the event row is locked. Inside a VOLATILE plpgsql function every statement takes a fresh
-- snapshot, so after `SELECT ... FOR UPDATE` returns it sees everything the previous lock holder
-- committed (a single CTE statement would not: it keeps the snapshot it took before waiting).
-- Outcomes: 'ok', 'event_not_found', 'already_booked'.

CREATE OR REPLACE FUNCTION book_ticket(p_event_id uuid, p_user_id text, p_request_id text)
RETURNS TABLE (outcome text, booking_id uuid, booking_status text, waiting_position integer,
               booking_created_at timestamptz, booking_updated_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    ev events%ROWTYPE;
    -- Read once the lock is held, so that an event's changes are stamped in the order the lock served
    -- them; now() is the transaction's start, which came before the wait for the lock.
    changed_at timestamptz;
BEGIN
    SELECT * INTO ev FROM events WHERE id = p_event_id FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'event_not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    changed_at := clock_timestamp();
    booking_status := CASE WHEN ev.available_tickets > 0 THEN 'confirmed' ELSE 'waiting' END;
    INSERT INTO bookings AS b (event_id, user_id, status, created_at, updated_at)
    VALUES (p_event_id, p_user_id, booking_status, changed_at, changed_at)
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
           updated_at = changed_at
     WHERE id = p_event_id;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, created_at)
    VALUES (p_event_id, booking_id, p_user_id,
            CASE WHEN booking_status = 'confirmed' THEN 'booked' ELSE 'waitlisted' END, p_request_id, changed_at);
    -- New entries join at the back, so the position is the queue length including them.
    waiting_position := CASE WHEN booking_status = 'waiting' THEN ev.waiting_count + 1 END;
    outcome := 'ok';
    RETURN NEXT;
END
$$;
"""

CANCEL_BOOKING = """
-- cancel_booking: cancel the user's active booking; a freed ticket goes at once to the oldest waiting
-- entry (strict FIFO by seq). Both changes go to the ledger under the one request id.
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). Every statement names the event (p_event_id), so that on a table sharded by
-- event_id each one runs on one shard (docs/scaling.md).
-- Outcomes: 'ok', 'event_not_found', 'booking_not_found', 'already_cancelled'.

CREATE OR REPLACE FUNCTION cancel_booking(p_event_id uuid, p_user_id text, p_request_id text)
RETURNS TABLE (outcome text, booking_id uuid, booking_created_at timestamptz,
               booking_updated_at timestamptz, promoted_id uuid, promoted_user_id text,
               promoted_created_at timestamptz, promoted_updated_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    was_status text;
    -- Read once the lock is held, so that an event's changes are stamped in the order the lock served
    -- them; now() is the transaction's start, which came before the wait for the lock.
    changed_at timestamptz;
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
    changed_at := clock_timestamp();
    UPDATE bookings b SET status = 'cancelled', updated_at = changed_at
     WHERE b.event_id = p_event_id AND b.id = booking_id
    RETURNING b.created_at, b.updated_at INTO booking_created_at, booking_updated_at;
    IF was_status = 'confirmed' THEN
        -- The freed ticket goes to the oldest waiting entry, if any (strict FIFO by seq).
        UPDATE bookings b SET status = 'confirmed', updated_at = changed_at
         WHERE b.event_id = p_event_id
           AND b.id = (SELECT w.id FROM bookings w
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
           updated_at = changed_at
     WHERE id = p_event_id;
    -- One statement for both rows (the cancellation, then any promotion): one less inside the lock.
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, created_at)
    SELECT p_event_id, change.booking, change.who, change.kind, p_request_id, changed_at
      FROM (VALUES (1, booking_id, p_user_id, 'cancelled'),
                   (2, promoted_id, promoted_user_id, 'promoted')) AS change (step, booking, who, kind)
     WHERE change.booking IS NOT NULL
     ORDER BY change.step;
    outcome := 'ok';
    RETURN NEXT;
END
$$;
"""

BOOK_TICKET_BEFORE = """
-- book_ticket: give the user a ticket if one is left, else a place at the back of the waiting list,
-- and append the change to the ledger (booking_events) with the request id it is given (the server's own
-- id for the request, never a client's X-Request-ID: app/web/request_context.py).
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). The service calls it as one statement, so a booking costs one round trip
-- while the event row is locked. Inside a VOLATILE plpgsql function every statement takes a fresh
-- snapshot, so after `SELECT ... FOR UPDATE` returns it sees everything the previous lock holder
-- committed (a single CTE statement would not: it keeps the snapshot it took before waiting).
-- Outcomes: 'ok', 'event_not_found', 'already_booked'.

CREATE OR REPLACE FUNCTION book_ticket(p_event_id uuid, p_user_id text, p_request_id text)
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
$$;
"""

CANCEL_BOOKING_BEFORE = """
-- cancel_booking: cancel the user's active booking; a freed ticket goes at once to the oldest waiting
-- entry (strict FIFO by seq). Both changes go to the ledger under the one request id.
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). Every statement names the event (p_event_id), so that on a table sharded by
-- event_id each one runs on one shard (docs/scaling.md).
-- Outcomes: 'ok', 'event_not_found', 'booking_not_found', 'already_cancelled'.

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


def upgrade() -> None:
    create_or_replace(BOOK_TICKET, CANCEL_BOOKING)


def downgrade() -> None:
    create_or_replace(BOOK_TICKET_BEFORE, CANCEL_BOOKING_BEFORE)
