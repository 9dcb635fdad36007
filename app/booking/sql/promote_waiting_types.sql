-- promote_waiting_types: the FIFO rule with ticket types (issue 26), run under the event lock after
-- every release of tickets (or shrink of a waiting entry) on an event of several types, by
-- promote_waiting.sql. The waiting entries are walked oldest first, with `room` the event's available
-- tickets (`p_available`, less what this walk promoted) and each type's room its total less its taken
-- tickets (ticket_types, which the caller has already updated for what it released):
--   1. an entry that wants more than `room` stops the walk;
--   2. one that wants a type blocked in this walk is passed over, and blocks each type it wants;
--   3. one with an item above its type's room blocks each type it wants;
--   4. else it is promoted, all its items (status `p_status`, as promote_waiting.sql says).
-- So nobody is overtaken by a later entry wanting any of the same types, nor by any later entry while
-- the event lacks room for it. The walk ends early, with the same outcome, once every type that still
-- has waiting tickets is blocked. A promotion may pass older entries: it is counted as a departure at the
-- booking's ordinal in the queue's trees (queue_departures: the event-wide one, 0, and each of its
-- types'), like a waiting entry that left, so that the places behind it move up (waiting_place.sql,
-- waiting_item_places.sql), and the types' counters are updated once, with the totals.
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). It returns what promote_waiting does, and `promoted_items`: per promoted
-- booking, oldest first, its items as a JSON array of [code, quantity]. The caller updates the event row.

CREATE OR REPLACE FUNCTION promote_waiting_types(
    p_event_id uuid, p_available integer, p_changed_at timestamptz, p_status text, p_expires_at timestamptz,
    OUT promoted_ids uuid[], OUT promoted_user_ids text[], OUT promoted_quantities integer[],
    OUT promoted_created_ats timestamptz[], OUT promoted_updated_ats timestamptz[], OUT promoted_tickets integer,
    OUT promoted_items jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    codes text[];  -- the event's types by position
    type_room integer[];  -- by position: total less taken, less what this walk promoted
    type_waiting bigint[];  -- by position: tickets wanted by the entries not promoted yet
    promoted_by_type integer[];
    blocked boolean[];
    joined bigint;  -- the event's ordinals so far: the trees' size (queue_cover_nodes.sql)
    entry record;
    positions integer[];  -- of the entry's items
    k integer;
    promoted record;
BEGIN
    promoted_ids := '{}';
    promoted_user_ids := '{}';
    promoted_quantities := '{}';
    promoted_created_ats := '{}';
    promoted_updated_ats := '{}';
    promoted_tickets := 0;
    promoted_items := '[]';
    SELECT array_agg(t.code ORDER BY t.position), array_agg(t.total_tickets - t.taken_tickets ORDER BY t.position),
           array_agg(t.waiting_tickets ORDER BY t.position)
      INTO codes, type_room, type_waiting
      FROM ticket_types t WHERE t.event_id = p_event_id;
    promoted_by_type := array_fill(0, ARRAY[cardinality(codes)]);
    blocked := array_fill(false, ARRAY[cardinality(codes)]);
    SELECT e.queue_joined_entries INTO joined FROM events e WHERE e.id = p_event_id;
    FOR entry IN SELECT w.id, w.quantity, w.item_types, w.item_quantities, w.queue_ordinal FROM bookings w
                  WHERE w.event_id = p_event_id AND w.status = 'waiting'
                  ORDER BY w.seq LOOP
        EXIT WHEN entry.quantity > p_available - promoted_tickets;
        positions := ARRAY(SELECT array_position(codes, c) FROM unnest(entry.item_types) WITH ORDINALITY AS i (c, n)
                            ORDER BY i.n);
        IF EXISTS (SELECT 1 FROM unnest(positions, entry.item_quantities) AS i (p, q)
                    WHERE blocked[i.p] OR i.q > type_room[i.p]) THEN
            FOREACH k IN ARRAY positions LOOP
                blocked[k] := true;
            END LOOP;
            -- Every type still wanted is blocked: nobody further can be promoted.
            EXIT WHEN NOT EXISTS (SELECT 1 FROM generate_subscripts(codes, 1) AS t (k)
                                   WHERE type_waiting[t.k] > 0 AND NOT blocked[t.k]);
            CONTINUE;
        END IF;
        UPDATE bookings b
           SET status = p_status, updated_at = p_changed_at,
               offer_expires_at = CASE WHEN p_status = 'offered' THEN p_expires_at END,
               hold_expires_at = CASE WHEN p_status = 'held' THEN p_expires_at END
         WHERE b.event_id = p_event_id AND b.id = entry.id
        RETURNING b.id, b.user_id, b.quantity, b.created_at, b.updated_at, b.queue_ordinal INTO promoted;
        FOR i IN 1 .. cardinality(positions) LOOP
            type_room[positions[i]] := type_room[positions[i]] - entry.item_quantities[i];
            type_waiting[positions[i]] := type_waiting[positions[i]] - entry.item_quantities[i];
            promoted_by_type[positions[i]] := promoted_by_type[positions[i]] + entry.item_quantities[i];
        END LOOP;
        INSERT INTO queue_departures AS d (event_id, ticket_type, node, entries, tickets)
        SELECT p_event_id, tree.ticket_type, node, tree.entries, tree.tickets
          FROM (VALUES (0, 1, promoted.quantity)) AS tree (ticket_type, entries, tickets)
               CROSS JOIN unnest(queue_cover_nodes(promoted.queue_ordinal, joined)) AS node
        UNION ALL
        SELECT p_event_id, i.p, node, 0, i.q
          FROM unnest(positions, entry.item_quantities) AS i (p, q)
               CROSS JOIN unnest(queue_cover_nodes(promoted.queue_ordinal, joined)) AS node
        ON CONFLICT (event_id, ticket_type, node) DO UPDATE
           SET entries = d.entries + excluded.entries, tickets = d.tickets + excluded.tickets;
        promoted_ids := promoted_ids || promoted.id;
        promoted_user_ids := promoted_user_ids || promoted.user_id;
        promoted_quantities := promoted_quantities || promoted.quantity;
        promoted_created_ats := promoted_created_ats || promoted.created_at;
        promoted_updated_ats := promoted_updated_ats || promoted.updated_at;
        promoted_tickets := promoted_tickets + promoted.quantity;
        promoted_items := promoted_items || jsonb_build_array(
            (SELECT jsonb_agg(jsonb_build_array(i.c, i.q) ORDER BY i.n)
               FROM unnest(entry.item_types, entry.item_quantities) WITH ORDINALITY AS i (c, q, n)));
    END LOOP;
    UPDATE ticket_types t
       SET taken_tickets = t.taken_tickets + promoted_by_type[t.position],
           waiting_tickets = t.waiting_tickets - promoted_by_type[t.position]
     WHERE t.event_id = p_event_id AND promoted_by_type[t.position] > 0;
END
$$;
