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
-- Fair sale opening (issue 27): `p_sales_open_at` moves the opening ('-infinity' clears it; cleared while
-- entries wait in the lobby, the opening is now: they are drawn at once), until the draw starts
-- ('draw_started' after). A lobby entry's quantity, like a waiting one's, bounds a lower total.

CREATE OR REPLACE FUNCTION update_event(p_event_id uuid, p_request_id text, p_name text, p_total_tickets integer,
                                        p_max_per_booking integer, p_sales_open boolean, p_promotion text,
                                        p_offer_ttl_seconds integer, p_hold_ttl_seconds integer DEFAULT NULL,
                                        p_sales_open_at timestamptz DEFAULT NULL)
RETURNS TABLE (outcome text, event_row events, promoted_ids uuid[], promoted_user_ids text[],
               promoted_quantities integer[], promoted_created_ats timestamptz[], promoted_updated_ats timestamptz[],
               promoted_offer_expires_at timestamptz, promoted_status text, promoted_hold_expires_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    ev events%ROWTYPE;
    total integer;
    available integer;  -- the event's, once the new total applies
    promoted_tickets integer;
    hold_ttl integer;  -- the event's hold_ttl_seconds after the change
    opens_at timestamptz;  -- the event's sales_open_at after the change (issue 27)
    promoted_expires_at timestamptz;  -- of the offers or holds a raise makes
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
    SELECT '{}', '{}', '{}', '{}', '{}', 0  -- nobody promoted, unless a raise below does
      INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats, promoted_updated_ats,
           promoted_tickets;
    outcome := CASE WHEN ev.status = 'cancelled' THEN 'event_cancelled' ELSE 'ok' END;
    total := coalesce(p_total_tickets, ev.total_tickets);
    hold_ttl := CASE WHEN p_hold_ttl_seconds IS NULL THEN ev.hold_ttl_seconds ELSE nullif(p_hold_ttl_seconds, 0) END;
    opens_at := CASE WHEN p_sales_open_at IS NULL THEN ev.sales_open_at
                     WHEN p_sales_open_at = '-infinity' AND ev.lobby_count > 0 THEN clock_timestamp()
                     ELSE nullif(p_sales_open_at, '-infinity') END;
    IF outcome = 'ok' AND opens_at IS DISTINCT FROM ev.sales_open_at AND ev.draw_started_at IS NOT NULL THEN
        outcome := 'draw_started';
    END IF;
    IF outcome = 'ok' AND total < ev.total_tickets - ev.available_tickets THEN
        outcome := 'capacity_below_booked';
    END IF;
    -- Quantities are at most 100 (a CHECK), so only a total below that can be too small for an entry.
    IF outcome = 'ok' AND total < 100 AND EXISTS (
           SELECT 1 FROM bookings b
            WHERE b.event_id = p_event_id AND b.status IN ('waiting', 'lobby') AND b.quantity > total) THEN
        outcome := 'capacity_below_waiting';
    END IF;
    IF outcome <> 'ok' OR (coalesce(p_name, ev.name) IS NOT DISTINCT FROM ev.name AND total = ev.total_tickets
                           AND coalesce(p_max_per_booking, ev.max_per_booking) = ev.max_per_booking
                           AND coalesce(p_sales_open, ev.sales_open) = ev.sales_open
                           AND coalesce(p_promotion, ev.promotion) = ev.promotion
                           AND coalesce(p_offer_ttl_seconds, ev.offer_ttl_seconds) = ev.offer_ttl_seconds
                           AND hold_ttl IS NOT DISTINCT FROM ev.hold_ttl_seconds
                           AND opens_at IS NOT DISTINCT FROM ev.sales_open_at) THEN
        RETURN NEXT;
        RETURN;
    END IF;
    changed_at := clock_timestamp();
    available := ev.available_tickets + total - ev.total_tickets;
    SELECT * INTO promoted_status, promoted_expires_at
      FROM promotion_terms(coalesce(p_promotion, ev.promotion), coalesce(p_offer_ttl_seconds, ev.offer_ttl_seconds),
                           hold_ttl, changed_at);
    promoted_offer_expires_at := CASE WHEN promoted_status = 'offered' THEN promoted_expires_at END;
    promoted_hold_expires_at := CASE WHEN promoted_status = 'held' THEN promoted_expires_at END;
    -- Only a raise frees tickets: after a cut, or with the same total, the head still does not fit.
    IF total > ev.total_tickets THEN
        SELECT * INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats,
                      promoted_updated_ats, promoted_tickets
          FROM promote_waiting(p_event_id, available, changed_at, promoted_status, promoted_expires_at);
    END IF;
    -- The event row first, then the ledger: the webhook trigger snapshots the event at each entry.
    UPDATE events e
       SET name = coalesce(p_name, e.name),
           total_tickets = total,
           available_tickets = available - promoted_tickets,
           max_per_booking = coalesce(p_max_per_booking, e.max_per_booking),
           sales_open = coalesce(p_sales_open, e.sales_open),
           promotion = coalesce(p_promotion, e.promotion),
           offer_ttl_seconds = coalesce(p_offer_ttl_seconds, e.offer_ttl_seconds),
           hold_ttl_seconds = hold_ttl,
           sales_open_at = opens_at,
           held_tickets = e.held_tickets + CASE WHEN promoted_status = 'held' THEN promoted_tickets ELSE 0 END,
           waiting_count = e.waiting_count - cardinality(promoted_ids),
           waiting_tickets = e.waiting_tickets - promoted_tickets,
           queue_promoted_entries = e.queue_promoted_entries + cardinality(promoted_ids),
           queue_promoted_tickets = e.queue_promoted_tickets + promoted_tickets,
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
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
    SELECT p_event_id, p.id, p.user_id, CASE promoted_status WHEN 'confirmed' THEN 'promoted' ELSE promoted_status END,
           p_request_id, p.quantity, changed_at
      FROM unnest(promoted_ids, promoted_user_ids, promoted_quantities) WITH ORDINALITY AS p (id, user_id, quantity, step)
     ORDER BY p.step;
    RETURN NEXT;
END
$$;
