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
