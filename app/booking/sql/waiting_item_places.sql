-- waiting_item_places: each item's place in its type's queue (issue 26): the tickets of that type wanted
-- by older waiting entries, from what the entry was given when it joined (item_tickets_before: the
-- type's queue_joined_tickets then) less what left that type's queue ahead of it since: the tickets
-- promoted from the head while the event had one type (the event row's queue_promoted_tickets: all of
-- the first type), and those that left from elsewhere, promotions on an event of several types included
-- (type k's Fenwick tree in queue_departures). NULL for a booking without items (an event of one type:
-- waiting_place.sql's tickets_ahead is its one item's).
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). One statement, one snapshot; at most 31 tree nodes per item, whatever the
-- queue's length. Returns the places in the items' order.

CREATE OR REPLACE FUNCTION waiting_item_places(p_event_id uuid, p_ordinal bigint, p_item_types text[],
                                               p_item_tickets_before bigint[])
RETURNS bigint[]
LANGUAGE sql STABLE AS $$
    SELECT array_agg(i.before - CASE WHEN t.position = 1 THEN e.queue_promoted_tickets ELSE 0 END
                     - coalesce((SELECT sum(d.tickets) FROM queue_departures d
                                  WHERE d.event_id = p_event_id AND d.ticket_type = t.position
                                    AND d.node = ANY (queue_prefix_nodes(p_ordinal - 1))), 0)::bigint
                     ORDER BY i.n)
      FROM events e
      CROSS JOIN unnest(p_item_types, p_item_tickets_before) WITH ORDINALITY AS i (code, before, n)
      JOIN ticket_types t ON t.event_id = p_event_id AND t.code = i.code
     WHERE e.id = p_event_id
$$;
