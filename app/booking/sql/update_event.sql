-- update_event: an organiser's change to an event, under its row lock, in one round trip: its name,
-- its capacity (total_tickets), the most tickets a booking may hold, whether sales are open, how a
-- freed ticket is promoted (`auto`: confirmed; `offer`: offered for offer_ttl_seconds), how long a
-- booking that gets tickets holds them for its payment (hold_ttl_seconds, issue 25: 0 turns holds off,
-- which leaves the holds made before to be confirmed, cancelled or expire). A NULL
-- argument leaves that setting as it is. A raise frees tickets, which go by promote_waiting's strict
-- FIFO rule in the same transaction, under the settings as they are after the change (offered if
-- they say offer). Offers made before a switch to auto stay until accepted, declined or expired. A
-- lower total must leave room for every ticket held (confirmed or offered) and for every waiting
-- entry's quantity, which could otherwise never be confirmed.
-- The ledger gets `event_updated` (the one entry of every change, whichever settings it changes: its
-- webhook message is the change's one event.updated), then `sales_closed` / `sales_opened`, then
-- `capacity_changed` (with the totals before and after), which flask check replays, then one `promoted`
-- (or `offered`) entry per promoted booking, all under the one request id, after the event row is
-- updated: each entry's webhook message reports the event as the change left it.
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). Every statement names the event (p_event_id), so that on a table sharded by
-- event_id each one runs on one shard (docs/scaling.md). It returns one row: the outcome, the event
-- row as it is now, and the promoted bookings, oldest first, as arrays, with the status a promoted booking
-- gets (promoted_status: confirmed, or offered until promoted_offer_expires_at, or held until
-- promoted_hold_expires_at). A request that changes
-- nothing writes nothing. Outcomes: 'ok', 'event_not_found', 'event_cancelled',
-- 'capacity_below_booked', 'capacity_below_waiting', 'draw_started'.
--
-- Ticket types (issue 26): `p_ticket_types`, a JSON array of {code, name?, total_tickets?,
-- max_per_booking?}, adds the types whose code is new (after the others, total_tickets required) and
-- changes the others (an absent key leaves that setting). No type's total may exceed the event's, after
-- the change ('ticket_type_above_event'), nor fall below what its bookings hold ('capacity_below_booked');
-- 20 types at most ('too_many_ticket_types'); 'ticket_type_total_required'. While an event has one type,
-- that type is the event: its total is the event's and its max_per_booking the event's (a change of either
-- changes both; both given and different: 'lone_type_mismatch'). Going from one type to several, under the
-- lock, the first type's counters start from the event row, every active booking gets its items (all of
-- its quantity, of the first type; a waiting one its place in that type's queue: its queue_tickets_before)
-- and the event-wide tree's departures are copied to the first type's tree, so that every place stays
-- right; O(the event's bookings), a rare organiser's change. A raise of the event or of a type walks the
-- queue (promote_waiting.sql, with types when there are several). The ledger gets `type_added` (totals
-- from 0) and `type_changed` (from, to) entries, with the code, after `capacity_changed`; promoted entries
-- carry their items. It returns the event's types after the change (event_ticket_types.sql) and the
-- promoted bookings' items (promote_waiting_types.sql).
-- Fair sale opening (issue 27): `p_sales_open_at` moves the opening ('-infinity' clears it; cleared while
-- entries wait in the lobby, the opening is now: they are drawn at once), until the draw starts
-- ('draw_started' after). A lobby entry's quantity, like a waiting one's, bounds a lower total.

CREATE OR REPLACE FUNCTION update_event(p_event_id uuid, p_request_id text, p_name text, p_total_tickets integer,
                                        p_max_per_booking integer, p_sales_open boolean, p_promotion text,
                                        p_offer_ttl_seconds integer, p_hold_ttl_seconds integer DEFAULT NULL,
                                        p_ticket_types jsonb DEFAULT NULL, p_sales_open_at timestamptz DEFAULT NULL)
RETURNS TABLE (outcome text, event_row events, promoted_ids uuid[], promoted_user_ids text[],
               promoted_quantities integer[], promoted_created_ats timestamptz[], promoted_updated_ats timestamptz[],
               promoted_offer_expires_at timestamptz, promoted_status text, promoted_hold_expires_at timestamptz,
               promoted_items jsonb, ticket_types jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    ev events%ROWTYPE;
    total integer;
    booking_limit integer;  -- the event's max_per_booking after the change
    available integer;  -- the event's, once the new total applies
    promoted_tickets integer;
    head_entries integer;  -- of the promotions, those from the head of the queue (promote_waiting.sql)
    head_tickets integer;
    hold_ttl integer;  -- the event's hold_ttl_seconds after the change
    opens_at timestamptz;  -- the event's sales_open_at after the change (issue 27)
    promoted_expires_at timestamptz;  -- of the offers or holds a raise makes
    type_count integer;  -- the event's types after the change
    types record;  -- what the requested type changes amount to
    -- The requested types' codes, in the request's order, and their totals before (NULL: added), for the ledger.
    type_codes text[];
    totals_from integer[];
    -- Read once the lock is held, so that an event's changes are stamped in the order the lock served them.
    changed_at timestamptz;
BEGIN
    SELECT * INTO ev FROM events e WHERE e.id = p_event_id FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'event_not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    event_row := ev;
    SELECT '{}', '{}', '{}', '{}', '{}', 0, 0, 0  -- nobody promoted, unless a raise below does
      INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats, promoted_updated_ats,
           promoted_tickets, head_entries, head_tickets;
    outcome := CASE WHEN ev.status = 'cancelled' THEN 'event_cancelled' ELSE 'ok' END;
    total := coalesce(p_total_tickets, ev.total_tickets);
    booking_limit := coalesce(p_max_per_booking, ev.max_per_booking);
    hold_ttl := CASE WHEN p_hold_ttl_seconds IS NULL THEN ev.hold_ttl_seconds ELSE nullif(p_hold_ttl_seconds, 0) END;
    opens_at := CASE WHEN p_sales_open_at IS NULL THEN ev.sales_open_at
                     WHEN p_sales_open_at = '-infinity' AND ev.lobby_count > 0 THEN clock_timestamp()
                     ELSE nullif(p_sales_open_at, '-infinity') END;
    IF outcome = 'ok' AND opens_at IS DISTINCT FROM ev.sales_open_at AND ev.draw_started_at IS NOT NULL THEN
        outcome := 'draw_started';
    END IF;
    -- The requested types, each with the type of that code if it has one.
    SELECT count(*) FILTER (WHERE t.position IS NULL) AS added,
           count(*) FILTER (WHERE t.position IS NULL AND c.total_tickets IS NULL) AS without_total,
           bool_or(t.position IS NULL OR coalesce(c.name, t.name) IS DISTINCT FROM t.name
                   OR coalesce(c.total_tickets, t.total_tickets) <> t.total_tickets
                   OR coalesce(c.max_per_booking, t.max_per_booking) IS DISTINCT FROM t.max_per_booking) AS changes,
           max(c.total_tickets) AS lone_total, max(c.max_per_booking) AS lone_max_per_booking,
           bool_or(t.position IS NOT NULL AND c.total_tickets < CASE WHEN ev.ticket_type_count = 1 THEN ev.total_tickets - ev.available_tickets
                                          ELSE t.taken_tickets END) AS below_taken,
           bool_or(c.total_tickets > t.total_tickets) AS raised
      INTO types
      FROM jsonb_to_recordset(coalesce(p_ticket_types, '[]')) AS c (code text, name text, total_tickets integer,
                                                                     max_per_booking integer)
      LEFT JOIN ticket_types t ON t.event_id = p_event_id AND t.code = c.code;
    type_count := ev.ticket_type_count + types.added;
    IF outcome = 'ok' AND type_count = 1 THEN
        -- One type is the event: its total and its max_per_booking are the event's.
        IF (p_total_tickets <> types.lone_total) OR (p_max_per_booking <> types.lone_max_per_booking) THEN
            outcome := 'lone_type_mismatch';
        END IF;
        total := coalesce(p_total_tickets, types.lone_total, ev.total_tickets);
        booking_limit := coalesce(p_max_per_booking, types.lone_max_per_booking, ev.max_per_booking);
    END IF;
    IF outcome = 'ok' THEN
        outcome := CASE WHEN types.without_total > 0 THEN 'ticket_type_total_required'
                        WHEN type_count > 20 THEN 'too_many_ticket_types'
                        WHEN type_count > 1 AND EXISTS (
                                 SELECT 1 FROM ticket_types t
                                  LEFT JOIN jsonb_to_recordset(p_ticket_types) AS c (code text, total_tickets integer)
                                         ON c.code = t.code
                                  WHERE t.event_id = p_event_id AND coalesce(c.total_tickets, t.total_tickets) > total
                                 UNION ALL
                                 SELECT 1 FROM jsonb_to_recordset(p_ticket_types) AS c (total_tickets integer)
                                  WHERE c.total_tickets > total)
                             THEN 'ticket_type_above_event'
                        ELSE 'ok' END;
    END IF;
    IF outcome = 'ok' AND (total < ev.total_tickets - ev.available_tickets OR types.below_taken) THEN
        outcome := 'capacity_below_booked';
    END IF;
    -- Quantities are at most 100 (a CHECK), so only a total below that can be too small for an entry.
    IF outcome = 'ok' AND total < 100 AND EXISTS (
           SELECT 1 FROM bookings b
            WHERE b.event_id = p_event_id AND b.status IN ('waiting', 'lobby') AND b.quantity > total) THEN
        outcome := 'capacity_below_waiting';
    END IF;
    IF outcome <> 'ok' OR (coalesce(p_name, ev.name) IS NOT DISTINCT FROM ev.name AND total = ev.total_tickets
                           AND booking_limit = ev.max_per_booking
                           AND coalesce(p_sales_open, ev.sales_open) = ev.sales_open
                           AND coalesce(p_promotion, ev.promotion) = ev.promotion
                           AND coalesce(p_offer_ttl_seconds, ev.offer_ttl_seconds) = ev.offer_ttl_seconds
                           AND hold_ttl IS NOT DISTINCT FROM ev.hold_ttl_seconds AND NOT coalesce(types.changes, false)
                           AND opens_at IS NOT DISTINCT FROM ev.sales_open_at) THEN
        ticket_types := event_ticket_types(ev);
        RETURN NEXT;
        RETURN;
    END IF;
    changed_at := clock_timestamp();
    SELECT array_agg(c.code ORDER BY c.n), array_agg(t.total_tickets ORDER BY c.n)
      INTO type_codes, totals_from
      FROM ROWS FROM (jsonb_to_recordset(coalesce(p_ticket_types, '[]')) AS (code text)) WITH ORDINALITY AS c (code, n)
      LEFT JOIN ticket_types t ON t.event_id = p_event_id AND t.code = c.code;
    IF ev.ticket_type_count = 1 AND type_count > 1 THEN
        -- From one type to several: the first type's counters, the bookings' items, the first type's tree.
        UPDATE ticket_types t
           SET taken_tickets = ev.total_tickets - ev.available_tickets, waiting_tickets = ev.waiting_tickets,
               queue_joined_tickets = ev.queue_joined_tickets
         WHERE t.event_id = p_event_id AND t.position = 1;
        UPDATE bookings b
           SET item_types = ARRAY[(SELECT t.code FROM ticket_types t WHERE t.event_id = p_event_id AND t.position = 1)],
               item_quantities = ARRAY[b.quantity],
               item_tickets_before = CASE WHEN b.status = 'waiting' THEN ARRAY[b.queue_tickets_before] END
         WHERE b.event_id = p_event_id AND b.status <> 'cancelled';
        INSERT INTO queue_departures (event_id, ticket_type, node, entries, tickets)
        SELECT p_event_id, 1, d.node, 0, d.tickets
          FROM queue_departures d
         WHERE d.event_id = p_event_id AND d.ticket_type = 0;
    END IF;
    IF type_count = 1 THEN  -- one type follows the event's total, and keeps the event's max_per_booking
        UPDATE ticket_types t
           SET total_tickets = total, max_per_booking = NULL,
               name = coalesce((SELECT c.name FROM jsonb_to_recordset(p_ticket_types) AS c (code text, name text)
                                 WHERE c.code = t.code), t.name)
         WHERE t.event_id = p_event_id AND t.position = 1;
    ELSE
        UPDATE ticket_types t
           SET name = coalesce(c.name, t.name), total_tickets = coalesce(c.total_tickets, t.total_tickets),
               max_per_booking = coalesce(c.max_per_booking, t.max_per_booking)
          FROM jsonb_to_recordset(coalesce(p_ticket_types, '[]'))
               AS c (code text, name text, total_tickets integer, max_per_booking integer)
         WHERE t.event_id = p_event_id AND t.code = c.code;
    END IF;
    INSERT INTO ticket_types (event_id, position, code, name, total_tickets, max_per_booking)
    SELECT p_event_id, ev.ticket_type_count + row_number() OVER (ORDER BY c.n), c.code, c.name, c.total_tickets,
           c.max_per_booking
      FROM ROWS FROM (jsonb_to_recordset(coalesce(p_ticket_types, '[]'))
                      AS (code text, name text, total_tickets integer, max_per_booking integer)) WITH ORDINALITY
           AS c (code, name, total_tickets, max_per_booking, n)
     WHERE NOT EXISTS (SELECT 1 FROM ticket_types t WHERE t.event_id = p_event_id AND t.code = c.code);
    available := ev.available_tickets + total - ev.total_tickets;
    SELECT * INTO promoted_status, promoted_expires_at
      FROM promotion_terms(coalesce(p_promotion, ev.promotion), coalesce(p_offer_ttl_seconds, ev.offer_ttl_seconds),
                           hold_ttl, changed_at);
    promoted_offer_expires_at := CASE WHEN promoted_status = 'offered' THEN promoted_expires_at END;
    promoted_hold_expires_at := CASE WHEN promoted_status = 'held' THEN promoted_expires_at END;
    -- Only a raise frees tickets: after a cut, or with the same total, the head still does not fit.
    IF total > ev.total_tickets OR (type_count > 1 AND types.raised) THEN
        SELECT * INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats,
                      promoted_updated_ats, promoted_tickets, promoted_items, head_entries, head_tickets
          FROM promote_waiting(p_event_id, available, changed_at, promoted_status, promoted_expires_at, type_count > 1);
    END IF;
    -- The event row first, then the ledger: the webhook trigger snapshots the event at each entry.
    UPDATE events e
       SET name = coalesce(p_name, e.name),
           total_tickets = total,
           available_tickets = available - promoted_tickets,
           max_per_booking = booking_limit,
           sales_open = coalesce(p_sales_open, e.sales_open),
           promotion = coalesce(p_promotion, e.promotion),
           offer_ttl_seconds = coalesce(p_offer_ttl_seconds, e.offer_ttl_seconds),
           hold_ttl_seconds = hold_ttl,
           sales_open_at = opens_at,
           held_tickets = e.held_tickets + CASE WHEN promoted_status = 'held' THEN promoted_tickets ELSE 0 END,
           waiting_count = e.waiting_count - cardinality(promoted_ids),
           waiting_tickets = e.waiting_tickets - promoted_tickets,
           queue_promoted_entries = e.queue_promoted_entries + head_entries,
           queue_promoted_tickets = e.queue_promoted_tickets + head_tickets,
           ticket_type_count = type_count,
           updated_at = changed_at
     WHERE e.id = p_event_id
    RETURNING e.* INTO event_row;
    INSERT INTO booking_events (event_id, kind, request_id, created_at, total_tickets_from, total_tickets_to)
    SELECT p_event_id, change.kind, p_request_id, changed_at, change.total_from, change.total_to
      FROM (VALUES (0, 'event_updated', NULL::integer, NULL::integer, true),
                   (1, CASE WHEN p_sales_open THEN 'sales_opened' ELSE 'sales_closed' END, NULL, NULL,
                    p_sales_open IS DISTINCT FROM ev.sales_open AND p_sales_open IS NOT NULL),
                   (2, 'capacity_changed', ev.total_tickets, total, total <> ev.total_tickets))
           AS change (step, kind, total_from, total_to, happened)
     WHERE change.happened
     ORDER BY change.step;
    INSERT INTO booking_events (event_id, kind, request_id, created_at, ticket_type, total_tickets_from,
                                total_tickets_to)
    SELECT p_event_id, CASE WHEN c.total_from IS NULL THEN 'type_added' ELSE 'type_changed' END, p_request_id,
           changed_at, c.code, coalesce(c.total_from, 0), t.total_tickets
      FROM unnest(type_codes, totals_from) WITH ORDINALITY AS c (code, total_from, n)
      JOIN ticket_types t ON t.event_id = p_event_id AND t.code = c.code
     ORDER BY c.n;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at,
                                item_types, item_quantities)
    SELECT p_event_id, p.id, p.user_id, CASE promoted_status WHEN 'confirmed' THEN 'promoted' ELSE promoted_status END,
           p_request_id, p.quantity, changed_at, items.item_types, items.item_quantities
      FROM unnest(promoted_ids, promoted_user_ids, promoted_quantities) WITH ORDINALITY AS p (id, user_id, quantity, step)
      LEFT JOIN LATERAL (SELECT b.item_types, b.item_quantities FROM bookings b
                          WHERE type_count > 1 AND b.event_id = p_event_id AND b.id = p.id) items ON true
     ORDER BY p.step;
    ticket_types := event_ticket_types(event_row);
    RETURN NEXT;
END
$$;
