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
