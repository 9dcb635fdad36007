-- book_many: several bookings of one event in one statement, under one hold of its row lock.
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). The service gathers the bookings that arrive for an event while its
-- previous batch is in the database and sends them as one call (app/database/group_commit.py).
-- Each element is exactly one book_ticket call, in the order given, with its own quantity (absent
-- or NULL: one ticket), so every rule stays in book_ticket; the first call takes the event row lock
-- and the others find it already held by their own transaction. Rows come back in input order, one
-- per element. Ticket types (issue 26): a booking's items, whose number varies, come flattened:
-- `p_item_counts[i]` items of booking i (0 or absent: a bare quantity), their codes and quantities in
-- `p_item_types` and `p_item_quantities`, booking after booking.

CREATE OR REPLACE FUNCTION book_many(p_event_id uuid, p_user_ids text[], p_request_ids text[], p_quantities integer[] DEFAULT NULL,
                                     p_item_counts integer[] DEFAULT NULL, p_item_types text[] DEFAULT NULL,
                                     p_item_quantities integer[] DEFAULT NULL)
RETURNS TABLE (outcome text, booking_id uuid, booking_status text, waiting_position integer,
               booking_created_at timestamptz, booking_updated_at timestamptz,
               booking_quantity integer, tickets_ahead bigint, booking_hold_expires_at timestamptz,
               item_types text[], item_quantities integer[], item_tickets_ahead bigint[])
LANGUAGE plpgsql AS $$
DECLARE
    first integer := 1;  -- booking i's first item in the flattened arrays
    items integer;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_user_ids, 1), 0) LOOP
        items := coalesce(p_item_counts[i], 0);
        IF items = 0 THEN
            RETURN QUERY SELECT * FROM book_ticket(p_event_id, p_user_ids[i], p_request_ids[i],
                                                   coalesce(p_quantities[i], 1));
        ELSE
            RETURN QUERY SELECT * FROM book_ticket(p_event_id, p_user_ids[i], p_request_ids[i], NULL,
                                                   p_item_types[first:first + items - 1],
                                                   p_item_quantities[first:first + items - 1]);
            first := first + items;
        END IF;
    END LOOP;
END
$$;
