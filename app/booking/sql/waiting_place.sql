-- waiting_place: a waiting entry's place, from what it was given when it joined the queue (its
-- ordinal, the tickets queued before it) less what left the queue ahead of it since: the entries
-- promoted (always from the head, so always ahead; totals on the event row) and those that left
-- from elsewhere (whole or partial cancels of waiting entries; the Fenwick tree queue_departures).
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). One statement, so the event's totals and the tree come from one snapshot;
-- it reads the event row and at most 31 tree nodes, whatever the queue's length
-- (docs/performance.md, "The waiting list at a million entries").

CREATE OR REPLACE FUNCTION waiting_place(p_event_id uuid, p_ordinal bigint, p_tickets_before bigint)
RETURNS TABLE (waiting_position integer, tickets_ahead bigint)
LANGUAGE sql STABLE AS $$
    SELECT (p_ordinal - e.queue_promoted_entries - coalesce(sum(d.entries), 0))::integer,
           p_tickets_before - e.queue_promoted_tickets - coalesce(sum(d.tickets), 0)::bigint
      FROM events e
      LEFT JOIN queue_departures d
        ON d.event_id = e.id AND d.ticket_type = 0 AND d.node = ANY (queue_prefix_nodes(p_ordinal - 1))
     WHERE e.id = p_event_id
     GROUP BY e.id
$$;
