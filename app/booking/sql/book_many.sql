-- book_many: several bookings of one event in one statement, under one hold of its row lock.
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). The service gathers the bookings that arrive for an event while its
-- previous batch is in the database and sends them as one call (app/database/group_commit.py).
-- Each element is exactly one book_ticket call, in the order given, with its own quantity (absent
-- or NULL: one ticket), so every rule stays in book_ticket; the first call takes the event row lock
-- and the others find it already held by their own transaction. Rows come back in input order, one
-- per element.

CREATE OR REPLACE FUNCTION book_many(p_event_id uuid, p_user_ids text[], p_request_ids text[], p_quantities integer[] DEFAULT NULL)
RETURNS TABLE (outcome text, booking_id uuid, booking_status text, waiting_position integer,
               booking_created_at timestamptz, booking_updated_at timestamptz,
               booking_quantity integer, tickets_ahead bigint, booking_hold_expires_at timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_user_ids, 1), 0) LOOP
        RETURN QUERY SELECT * FROM book_ticket(p_event_id, p_user_ids[i], p_request_ids[i],
                                               coalesce(p_quantities[i], 1));
    END LOOP;
END
$$;
