-- cancel_event: call an event off: every active booking (confirmed, held, offered, waiting or in the lobby) is cancelled and the
-- event's status becomes 'cancelled', in one transaction under the event's row lock; afterwards
-- book_ticket, cancel_booking and update_event refuse it ('event_cancelled'). The ledger gets
-- `event_cancelled`, then one `cancelled` entry per booking it cancelled, oldest first, under the one
-- request id, after the event row is updated (each entry's webhook message reports the event as
-- called off). Calling it again on a cancelled event changes nothing and returns the event as it is,
-- with cancelled_bookings NULL.
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). Every statement names the event (p_event_id), so that on a table sharded by
-- event_id each one runs on one shard (docs/scaling.md). Its cost under the lock grows with the
-- event's active bookings: one UPDATE and one INSERT of that many rows (docs/organisers.md has the
-- numbers). Nobody can join the queue again, so the places of the waiting entries it cancels are not
-- recorded in queue_departures. Ticket types (issue 26): the types' counters go back to nothing taken
-- and nothing waiting, as the event row's do (an event of one type has none written). The cancelled
-- entries carry the items they held. Outcomes: 'ok', 'event_not_found'.

CREATE OR REPLACE FUNCTION cancel_event(p_event_id uuid, p_request_id text)
RETURNS TABLE (outcome text, event_row events, cancelled_bookings integer)
LANGUAGE plpgsql AS $$
DECLARE
    -- Read once the lock is held, so that an event's changes are stamped in the order the lock served them.
    changed_at timestamptz;
BEGIN
    SELECT * INTO event_row FROM events e WHERE e.id = p_event_id FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'event_not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    outcome := 'ok';  -- with cancelled_bookings NULL: it was already cancelled, and nothing changes
    IF event_row.status = 'cancelled' THEN
        RETURN NEXT;
        RETURN;
    END IF;
    changed_at := clock_timestamp();
    -- The event row first, then the ledger: the webhook trigger snapshots the event at each entry.
    UPDATE events e
       SET status = 'cancelled', available_tickets = e.total_tickets, waiting_count = 0, waiting_tickets = 0,
           held_tickets = 0, lobby_count = 0, updated_at = changed_at
     WHERE e.id = p_event_id
    RETURNING e.* INTO event_row;
    IF event_row.ticket_type_count > 1 THEN
        UPDATE ticket_types t SET taken_tickets = 0, waiting_tickets = 0 WHERE t.event_id = p_event_id;
    END IF;
    INSERT INTO booking_events (event_id, kind, request_id, created_at)
    VALUES (p_event_id, 'event_cancelled', p_request_id, changed_at);
    WITH cancelled AS (
        UPDATE bookings b SET status = 'cancelled', updated_at = changed_at
         WHERE b.event_id = p_event_id AND b.status <> 'cancelled'
        RETURNING b.id, b.user_id, b.quantity, b.seq, b.item_types, b.item_quantities)
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at,
                                item_types, item_quantities)
    SELECT p_event_id, c.id, c.user_id, 'cancelled', p_request_id, c.quantity, changed_at, c.item_types,
           c.item_quantities
      FROM cancelled c
     ORDER BY c.seq;
    GET DIAGNOSTICS cancelled_bookings = ROW_COUNT;
    RETURN NEXT;
END
$$;
