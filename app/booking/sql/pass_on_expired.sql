-- pass_on_expired: what a sweeper does once it has expired offers (expire_offers.sql) or holds
-- (expire_holds.sql) of one event, under its lock: the tickets they held go by promote_waiting's strict
-- FIFO rule, with the status the event's settings give (promotion_terms.sql: offered, held or confirmed),
-- the event row is updated once with the totals (held_tickets too: the expired holds' tickets leave it,
-- the holds made now join it), then the ledger gets one `p_kind` entry per expired booking (`expired`
-- or `hold_expired`, oldest first) and one entry per promoted one, all under the one request id, after
-- the event row, so that each entry's webhook message reports the event as the sweep left it.
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). `p_event` is the event row as the caller locked it; the expired bookings come
-- as parallel arrays, oldest first. Every statement names the event, so that on a table sharded by
-- event_id each one runs on one shard (docs/scaling.md). Returns how many bookings it promoted. Only the
-- sweepers call it, off the bookings' hot path: the nested call costs them nothing that matters.
-- Ticket types (issue 26): on an event of several, the expired bookings' items leave their types' taken
-- tickets before the walk (promote_waiting_types.sql), and the ledger entries carry the items.

CREATE OR REPLACE FUNCTION pass_on_expired(p_event events, p_request_id text, p_changed_at timestamptz, p_kind text,
                                           p_ids uuid[], p_user_ids text[], p_quantities integer[],
                                           OUT promoted_bookings integer)
LANGUAGE plpgsql AS $$
DECLARE
    released integer := (SELECT sum(q) FROM unnest(p_quantities) q);
    promoted_status text;  -- what the freed tickets make of the entries they reach
    deadline timestamptz;  -- of the offers or holds made now
    promoted_ids uuid[];
    promoted_user_ids text[];
    promoted_quantities integer[];
    promoted_created_ats timestamptz[];
    promoted_updated_ats timestamptz[];
    promoted_tickets integer;
    promoted_items jsonb;
    head_entries integer;  -- of the promotions, those from the head of the queue (promote_waiting.sql)
    head_tickets integer;
    typed boolean := p_event.ticket_type_count > 1;
BEGIN
    IF typed THEN  -- before the walk, which reads each type's room
        UPDATE ticket_types t
           SET taken_tickets = t.taken_tickets - r.q
          FROM (SELECT i.code, sum(i.q) AS q
                  FROM bookings b CROSS JOIN unnest(b.item_types, b.item_quantities) AS i (code, q)
                 WHERE b.event_id = p_event.id AND b.id = ANY (p_ids)
                 GROUP BY i.code) AS r
         WHERE t.event_id = p_event.id AND t.code = r.code;
    END IF;
    SELECT * INTO promoted_status, deadline
      FROM promotion_terms(p_event.promotion, p_event.offer_ttl_seconds, p_event.hold_ttl_seconds, p_changed_at);
    SELECT * INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats,
                  promoted_updated_ats, promoted_tickets, promoted_items, head_entries, head_tickets
      FROM promote_waiting(p_event.id, p_event.available_tickets + released, p_changed_at, promoted_status, deadline,
                           typed);
    -- The event row first, then the ledger: the webhook trigger snapshots the event at each entry.
    UPDATE events e
       SET available_tickets = e.available_tickets + released - promoted_tickets,
           waiting_count = e.waiting_count - cardinality(promoted_ids),
           waiting_tickets = e.waiting_tickets - promoted_tickets,
           queue_promoted_entries = e.queue_promoted_entries + head_entries,
           queue_promoted_tickets = e.queue_promoted_tickets + head_tickets,
           held_tickets = e.held_tickets - CASE WHEN p_kind = 'hold_expired' THEN released ELSE 0 END
                          + CASE WHEN promoted_status = 'held' THEN promoted_tickets ELSE 0 END,
           updated_at = p_changed_at
     WHERE e.id = p_event.id;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at,
                                item_types, item_quantities)
    SELECT p_event.id, x.id, x.user_id, p_kind, p_request_id, x.quantity, p_changed_at, items.item_types,
           items.item_quantities
      FROM unnest(p_ids, p_user_ids, p_quantities) WITH ORDINALITY AS x (id, user_id, quantity, step)
          LEFT JOIN LATERAL (SELECT b.item_types, b.item_quantities FROM bookings b
                              WHERE typed AND b.event_id = p_event.id AND b.id = x.id) items ON true
     ORDER BY x.step;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at,
                                item_types, item_quantities)
    SELECT p_event.id, p.id, p.user_id, CASE promoted_status WHEN 'confirmed' THEN 'promoted' ELSE promoted_status END,
           p_request_id, p.quantity, p_changed_at, items.item_types, items.item_quantities
      FROM unnest(promoted_ids, promoted_user_ids, promoted_quantities) WITH ORDINALITY AS p (id, user_id, quantity, step)
          LEFT JOIN LATERAL (SELECT b.item_types, b.item_quantities FROM bookings b
                              WHERE typed AND b.event_id = p_event.id AND b.id = p.id) items ON true
     ORDER BY p.step;
    promoted_bookings := cardinality(promoted_ids);
END
$$;
