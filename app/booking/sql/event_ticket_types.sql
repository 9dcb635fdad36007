-- event_ticket_types: an event's ticket types as its replies show them (issue 26), by position: code,
-- name, total_tickets, max_per_booking (the event's when the type has none), available_tickets (the
-- type's own room: its total less what its bookings hold) and waiting_tickets. On an event of one type
-- the type's counters are not kept (book_ticket.sql): they follow from the event row. An event called
-- off holds nothing (cancel_event.sql), whatever the snapshot its caller reads the types in.
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). A JSON array, read by the event's reads and returned by update_event.

CREATE OR REPLACE FUNCTION event_ticket_types(p_event events) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_agg(jsonb_build_object(
               'code', t.code, 'name', t.name, 'total_tickets', t.total_tickets,
               'max_per_booking', coalesce(t.max_per_booking, p_event.max_per_booking),
               'available_tickets', CASE WHEN p_event.status = 'cancelled' THEN t.total_tickets
                                         WHEN p_event.ticket_type_count = 1
                                         THEN t.total_tickets - p_event.total_tickets + p_event.available_tickets
                                         ELSE t.total_tickets - t.taken_tickets END,
               'waiting_tickets', CASE WHEN p_event.status = 'cancelled' THEN 0
                                       WHEN p_event.ticket_type_count = 1 THEN p_event.waiting_tickets
                                       ELSE t.waiting_tickets END)
           ORDER BY t.position)
      FROM ticket_types t
     WHERE t.event_id = p_event.id
$$;
