-- waits_at_back: the rule for a booking that arrives at the back of the queue: whether it must wait, on the
-- event row `ev` as read under its lock, wanting `p_wanted` tickets; with ticket types (issue 26), whether
-- one of its types has waiting tickets (`p_type_queued`) and whether each of its items fits in its type's
-- room (`p_types_fit`). book_ticket asks it for each booking; the draw (seat_lobby.sql) asks it whether
-- the smallest booking there could be (one ticket, no type queued, every type with room) would wait: if so,
-- every entry would, so the draw queues the rest at once (queue_lobby.sql).
--
-- All or nothing, and nobody overtakes a waiting entry:
-- - on an event of one type, it waits if anyone waits or not all its tickets are available;
-- - on an event of several, it gets its tickets at once iff the FIFO walk with types
--   (promote_waiting_types.sql) would promote it as the newest entry; in a queue that every release walked,
--   that is: it fits in the event's room, none of its types has waiting tickets, each item fits in its type's
--   room, and no waiting entry wants more than the event has left (one probe of ix_bookings_waiting_items).
-- The answer only grows with what the booking wants, so "the smallest would wait" means "everyone would".
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). Every statement names the event (ev.id), so that on a table sharded by event_id
-- each one runs on one shard (docs/scaling.md).

CREATE OR REPLACE FUNCTION waits_at_back(ev events, p_wanted integer, p_type_queued boolean, p_types_fit boolean)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF ev.ticket_type_count > 1 THEN
        RETURN p_wanted > ev.available_tickets OR p_type_queued OR NOT p_types_fit
               OR EXISTS (SELECT 1 FROM bookings w
                           WHERE w.event_id = ev.id AND w.status = 'waiting' AND w.item_types IS NOT NULL
                             AND w.quantity > ev.available_tickets);
    END IF;
    RETURN ev.waiting_count > 0 OR p_wanted > ev.available_tickets;
END
$$;
