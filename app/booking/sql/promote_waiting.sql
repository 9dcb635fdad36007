-- promote_waiting: the strict first-come-first-served rule, run under the event lock after every
-- release of tickets: confirm the head of the queue while its quantity fits in `p_available`; the
-- first that does not fit stops it (nobody overtakes the head, not even a smaller booking).
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). It returns the promoted bookings, oldest first, and changes only their rows:
-- the caller updates the event row once with the totals, so the row's CHECKs hold at every statement,
-- and appends the ledger entries. Each promotion is one statement found through the partial index
-- ix_bookings_waiting_queue, plus one for the head that stops it, whatever the queue's length.
-- Promoted rows are stamped `p_changed_at`, the caller's time of the change (read once the lock is held).

CREATE OR REPLACE FUNCTION promote_waiting(p_event_id uuid, p_available integer, p_changed_at timestamptz)
RETURNS TABLE (promoted_id uuid, promoted_user_id text, promoted_quantity integer,
               promoted_created_at timestamptz, promoted_updated_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    available integer := p_available;
BEGIN
    LOOP
        -- The head (oldest waiting entry), confirmed only if it fits: the first that does not, stops.
        UPDATE bookings b SET status = 'confirmed', updated_at = p_changed_at
         WHERE b.event_id = p_event_id
           AND b.id = (SELECT w.id FROM bookings w
                        WHERE w.event_id = p_event_id AND w.status = 'waiting'
                        ORDER BY w.seq LIMIT 1)
           AND b.quantity <= available
        RETURNING b.id, b.user_id, b.quantity, b.created_at, b.updated_at
        INTO promoted_id, promoted_user_id, promoted_quantity, promoted_created_at, promoted_updated_at;
        EXIT WHEN NOT FOUND;
        available := available - promoted_quantity;
        RETURN NEXT;
    END LOOP;
END
$$;
