-- cancel_booking: cancel the user's active booking, or with `p_quantity` less than it holds, only that
-- many of its tickets (a partial cancel: a confirmed booking releases them, a waiting entry shrinks
-- and keeps its place). Whatever is freed goes by promote_waiting's strict FIFO rule, in the same
-- transaction. The change and every promotion go to the ledger under the one request id, after the
-- event row is updated, so that each entry's webhook message reports the event as the change left it.
-- An offer given up (issue 16) is cancelled with its reason: `declined`, or `expired` if its time ran
-- out before the sweeper came; its tickets go on like a confirmed booking's. With `p_decline`
-- (POST /api/decline) only an unexpired offer may be given up: else 'no_offer' or 'offer_expired'.
-- In offer mode (events.promotion) the freed tickets are offered, not confirmed, until the event's
-- offer_ttl_seconds have passed; in auto mode with holds on (issue 25) they are held for the payment
-- (promotion_terms.sql). A hold is cancelled like a confirmed booking, whole or partly; cancelled whole
-- after its time ran out, before the sweeper came, its reason is `hold_expired`, as the sweep's would be.
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). Every statement names the event (p_event_id), so that on a table sharded by
-- event_id each one runs on one shard (docs/scaling.md). It returns one row: the v1 columns
-- (promoted_* is the first promoted booking, for v1 clients), then the booking as it is now and
-- every promoted booking, oldest first, as arrays, with the status a promoted booking gets
-- (promoted_status: confirmed, or offered until promoted_offer_expires_at in offer mode, or held until
-- promoted_hold_expires_at with holds on). A waiting entry that leaves or shrinks is counted
-- in queue_departures at its ordinal, so that the places behind it move up (waiting_place.sql).
-- Ticket types (issue 26): a partial cancel names the items to give up (`p_item_types`, codes, and
-- `p_item_quantities`), each of a type the booking holds and at most what it holds of it; a type given up
-- whole leaves the booking's items (a waiting entry keeps its place in the queues of the others). On an
-- event of several types a bare `p_quantity` is refused ('items_required'); the types' counters are
-- updated for what is given up, before the walk (promote_waiting_types.sql), which runs whenever the
-- event has room; the ledger entries carry the items they moved. On an event of one type the items are
-- only checked (of its type) and the cancel runs as a bare quantity: nothing more written.
-- Outcomes: 'ok', 'event_not_found', 'event_cancelled', 'booking_not_found', 'already_cancelled', 'quantity_above_held',
-- 'no_offer', 'offer_expired'; with types, 'items_required', 'items_above_held'.
-- A quantity below 1 is not a request the service sends: it raises check_violation.
-- An entry in the lobby (issue 27) holds no ticket and no place: it leaves the lobby (or wants fewer), and
-- nothing else changes; once ranked, its rank is passed over by the draw (seat_lobby.sql).

CREATE OR REPLACE FUNCTION cancel_booking(p_event_id uuid, p_user_id text, p_request_id text, p_quantity integer DEFAULT NULL,
                                          p_decline boolean DEFAULT false, p_item_types text[] DEFAULT NULL,
                                          p_item_quantities integer[] DEFAULT NULL)
RETURNS TABLE (outcome text, booking_id uuid, booking_created_at timestamptz,
               booking_updated_at timestamptz, promoted_id uuid, promoted_user_id text,
               promoted_created_at timestamptz, promoted_updated_at timestamptz,
               booking_status text, booking_quantity integer, waiting_position integer, tickets_ahead bigint,
               promoted_ids uuid[], promoted_user_ids text[], promoted_quantities integer[],
               promoted_created_ats timestamptz[], promoted_updated_ats timestamptz[],
               booking_offer_expires_at timestamptz, booking_cancel_reason text, promoted_offer_expires_at timestamptz,
               promoted_status text, booking_hold_expires_at timestamptz, booking_payment_reference text,
               promoted_hold_expires_at timestamptz, booking_item_types text[], booking_item_quantities integer[],
               booking_item_tickets_ahead bigint[], promoted_items jsonb, booking_lobby_rank integer)
LANGUAGE plpgsql AS $$
DECLARE
    ev events%ROWTYPE;
    held bookings%ROWTYPE;
    released integer;  -- the tickets the booking gives up
    available integer;  -- the event's, once they are released
    promoted_tickets integer;
    head_entries integer;  -- of the promotions, those from the head of the queue (promote_waiting.sql)
    head_tickets integer;
    typed boolean;  -- the event has several types: its bookings have items
    -- With types: the items given up, and those kept (their places too).
    released_types text[];
    released_quantities integer[];
    kept_types text[];
    kept_quantities integer[];
    kept_before bigint[];
    reason text;  -- why an offer ends (declined, or expired), or a hold (hold_expired)
    promoted_expires_at timestamptz;  -- of the offers or holds the freed tickets make
    -- Read once the lock is held, so that an event's changes are stamped in the order the lock served
    -- them; now() is the transaction's start, which came before the wait for the lock.
    changed_at timestamptz;
BEGIN
    SELECT * INTO ev FROM events WHERE id = p_event_id FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'event_not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    -- Calling the event off cancelled every booking; the client learns why rather than 'already_cancelled'.
    -- Closed sales do not stop a cancel, nor the promotions it makes.
    IF ev.status = 'cancelled' THEN
        outcome := 'event_cancelled';
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT * INTO held FROM bookings b
     WHERE b.event_id = p_event_id AND b.user_id = p_user_id AND b.status <> 'cancelled';
    IF p_decline AND (NOT FOUND OR held.status <> 'offered') THEN
        -- An offer the sweeper has expired is offer_expired, as it was before the sweep (accept_offer).
        outcome := CASE WHEN NOT FOUND AND (SELECT b.cancel_reason FROM bookings b
                                             WHERE b.event_id = p_event_id AND b.user_id = p_user_id
                                             ORDER BY b.seq DESC LIMIT 1) = 'expired'
                        THEN 'offer_expired' ELSE 'no_offer' END;
        RETURN NEXT;
        RETURN;
    END IF;
    IF NOT FOUND THEN
        outcome := CASE WHEN EXISTS (SELECT 1 FROM bookings b
                                      WHERE b.event_id = p_event_id AND b.user_id = p_user_id)
                        THEN 'already_cancelled' ELSE 'booking_not_found' END;
        RETURN NEXT;
        RETURN;
    END IF;
    IF p_quantity < 1 THEN
        RAISE EXCEPTION 'cancel_booking: quantity % is not a number of tickets', p_quantity
              USING ERRCODE = 'check_violation';
    END IF;
    IF p_quantity > held.quantity THEN
        outcome := 'quantity_above_held';
        RETURN NEXT;
        RETURN;
    END IF;
    typed := ev.ticket_type_count > 1;
    IF p_item_types IS NOT NULL OR (typed AND p_quantity IS NOT NULL) THEN
        -- Each item of a type the booking holds, at most what it holds of it (an event of one type: its one type).
        outcome := CASE WHEN p_item_types IS NULL THEN 'items_required'
                        WHEN EXISTS (SELECT 1 FROM unnest(p_item_types, p_item_quantities) AS i (code, q)
                                      WHERE i.q > coalesce((SELECT h.q FROM unnest(held.item_types, held.item_quantities)
                                                                        AS h (code, q) WHERE h.code = i.code),
                                                           CASE WHEN NOT typed AND i.code = (
                                                                    SELECT t.code FROM ticket_types t
                                                                     WHERE t.event_id = p_event_id AND t.position = 1)
                                                                THEN held.quantity END, 0))
                             THEN 'items_above_held' END;
        IF outcome IS NOT NULL THEN
            RETURN NEXT;
            RETURN;
        END IF;
        p_quantity := (SELECT sum(q) FROM unnest(p_item_quantities) AS q);
    END IF;
    changed_at := clock_timestamp();
    -- The database's clock decides: an offer past its time is expired, whether or not swept yet.
    IF p_decline AND held.offer_expires_at <= changed_at THEN
        outcome := 'offer_expired';
        RETURN NEXT;
        RETURN;
    END IF;
    released := coalesce(p_quantity, held.quantity);
    booking_status := CASE WHEN released = held.quantity THEN 'cancelled' ELSE held.status END;
    IF typed THEN
        -- What it gives up of each type (all it holds, unless items were named), and what it keeps.
        SELECT array_agg(h.code ORDER BY h.n) FILTER (WHERE r.q > 0),
               array_agg(r.q ORDER BY h.n) FILTER (WHERE r.q > 0),
               array_agg(h.code ORDER BY h.n) FILTER (WHERE h.q > coalesce(r.q, 0)),
               array_agg(h.q - coalesce(r.q, 0) ORDER BY h.n) FILTER (WHERE h.q > coalesce(r.q, 0)),
               array_agg(h.before ORDER BY h.n) FILTER (WHERE h.q > coalesce(r.q, 0))
          INTO released_types, released_quantities, kept_types, kept_quantities, kept_before
          FROM unnest(held.item_types, held.item_quantities, held.item_tickets_before) WITH ORDINALITY
               AS h (code, q, before, n)
          LEFT JOIN unnest(coalesce(p_item_types, held.item_types), coalesce(p_item_quantities, held.item_quantities))
               AS r (code, q) ON r.code = h.code;
    END IF;
    IF held.status = 'offered' AND booking_status = 'cancelled' THEN
        reason := CASE WHEN held.offer_expires_at <= changed_at THEN 'expired' ELSE 'declined' END;
    ELSIF held.status = 'held' AND booking_status = 'cancelled' AND held.hold_expires_at <= changed_at THEN
        reason := 'hold_expired';
    END IF;
    -- A whole cancel keeps the quantity (and items) it held, as history; a partial one keeps the rest.
    UPDATE bookings b
       SET status = booking_status, updated_at = changed_at, cancel_reason = reason,
           quantity = b.quantity - CASE WHEN booking_status = 'cancelled' THEN 0 ELSE released END,
           item_types = CASE WHEN typed AND booking_status <> 'cancelled' THEN kept_types ELSE b.item_types END,
           item_quantities = CASE WHEN typed AND booking_status <> 'cancelled' THEN kept_quantities
                                  ELSE b.item_quantities END,
           -- A place only while it waits (a partial cancel of a booking that has its tickets drops it).
           item_tickets_before = CASE WHEN typed AND booking_status = 'waiting' THEN kept_before
                                      WHEN typed AND booking_status <> 'cancelled' THEN NULL
                                      ELSE b.item_tickets_before END
     WHERE b.event_id = p_event_id AND b.id = held.id
    RETURNING b.id, b.created_at, b.updated_at, b.quantity, b.offer_expires_at, b.cancel_reason, b.hold_expires_at,
              b.payment_reference, b.item_types, b.item_quantities, b.item_tickets_before, b.lobby_rank
    INTO booking_id, booking_created_at, booking_updated_at, booking_quantity, booking_offer_expires_at,
         booking_cancel_reason, booking_hold_expires_at, booking_payment_reference, booking_item_types,
         booking_item_quantities, kept_before, booking_lobby_rank;
    IF held.status = 'waiting' THEN
        -- Left from the middle (or shrank): counted at its arrival rank, for the places behind it; with
        -- types, in each type's tree too.
        INSERT INTO queue_departures AS d (event_id, ticket_type, node, entries, tickets)
        SELECT p_event_id, tree.ticket_type, node, tree.entries, tree.tickets
          FROM (SELECT 0 AS ticket_type, (booking_status = 'cancelled')::int AS entries, released AS tickets
                UNION ALL
                SELECT t.position, 0, r.q
                  FROM unnest(released_types, released_quantities) AS r (code, q)
                  JOIN ticket_types t ON t.event_id = p_event_id AND t.code = r.code
                 WHERE typed) AS tree
               CROSS JOIN unnest(queue_cover_nodes(held.queue_ordinal, ev.queue_joined_entries)) AS node
        ON CONFLICT (event_id, ticket_type, node) DO UPDATE
           SET entries = d.entries + excluded.entries, tickets = d.tickets + excluded.tickets;
    END IF;
    IF typed AND held.status <> 'lobby' THEN  -- before the walk, which reads each type's room
        UPDATE ticket_types t
           SET taken_tickets = t.taken_tickets - CASE WHEN held.status = 'waiting' THEN 0 ELSE r.q END,
               waiting_tickets = t.waiting_tickets - CASE WHEN held.status = 'waiting' THEN r.q ELSE 0 END
          FROM unnest(released_types, released_quantities) AS r (code, q)
         WHERE t.event_id = p_event_id AND t.code = r.code;
    END IF;
    available := ev.available_tickets + CASE WHEN held.status IN ('waiting', 'lobby') THEN 0 ELSE released END;
    SELECT * INTO promoted_status, promoted_expires_at
      FROM promotion_terms(ev.promotion, ev.offer_ttl_seconds, ev.hold_ttl_seconds, changed_at);
    promoted_offer_expires_at := CASE WHEN promoted_status = 'offered' THEN promoted_expires_at END;
    promoted_hold_expires_at := CASE WHEN promoted_status = 'held' THEN promoted_expires_at END;
    IF available > 0 THEN
        SELECT * INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats,
                      promoted_updated_ats, promoted_tickets, promoted_items, head_entries, head_tickets
          FROM promote_waiting(p_event_id, available, changed_at, promoted_status, promoted_expires_at, typed);
    ELSE  -- nobody fits in no ticket: a waiting entry that leaves a sold-out event, the usual case
        SELECT '{}', '{}', '{}', '{}', '{}', 0, 0, 0
          INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats,
               promoted_updated_ats, promoted_tickets, head_entries, head_tickets;
    END IF;
    -- The event row first, then the ledger: the webhook trigger snapshots the event at each entry.
    UPDATE events
       SET available_tickets = available - promoted_tickets,
           waiting_count = waiting_count - (held.status = 'waiting' AND booking_status = 'cancelled')::int
                           - cardinality(promoted_ids),
           waiting_tickets = waiting_tickets - CASE WHEN held.status = 'waiting' THEN released ELSE 0 END
                             - promoted_tickets,
           queue_promoted_entries = queue_promoted_entries + head_entries,
           queue_promoted_tickets = queue_promoted_tickets + head_tickets,
           held_tickets = held_tickets - CASE WHEN held.status = 'held' THEN released ELSE 0 END
                          + CASE WHEN promoted_status = 'held' THEN promoted_tickets ELSE 0 END,
           lobby_count = lobby_count - (held.status = 'lobby' AND booking_status = 'cancelled')::int,
           updated_at = changed_at
     WHERE id = p_event_id;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at,
                                item_types, item_quantities)
    VALUES (p_event_id, booking_id, p_user_id,
            CASE WHEN booking_status = 'cancelled' THEN coalesce(reason, 'cancelled') ELSE 'reduced' END, p_request_id,
            released,
            changed_at, released_types, released_quantities);
    IF promoted_tickets > 0 THEN
        INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at,
                                    item_types, item_quantities)
        SELECT p_event_id, p.id, p.user_id, CASE promoted_status WHEN 'confirmed' THEN 'promoted' ELSE promoted_status END,
               p_request_id, p.quantity, changed_at, items.item_types, items.item_quantities
          FROM unnest(promoted_ids, promoted_user_ids, promoted_quantities) WITH ORDINALITY
               AS p (id, user_id, quantity, step)
          LEFT JOIN LATERAL (SELECT b.item_types, b.item_quantities FROM bookings b
                              WHERE typed AND b.event_id = p_event_id AND b.id = p.id) items ON true
         ORDER BY p.step;
    END IF;
    IF booking_id = ANY (promoted_ids) THEN  -- a head that shrank until it fitted
        booking_status := promoted_status;
        booking_offer_expires_at := promoted_offer_expires_at;
        booking_hold_expires_at := promoted_hold_expires_at;
    ELSIF booking_status = 'waiting' THEN
        SELECT * INTO waiting_position, tickets_ahead
          FROM waiting_place(p_event_id, held.queue_ordinal, held.queue_tickets_before);
        IF typed THEN  -- each item's place in its type's queue; the booking's is their sum
            booking_item_tickets_ahead := waiting_item_places(p_event_id, held.queue_ordinal, booking_item_types,
                                                              kept_before);
            tickets_ahead := (SELECT sum(a) FROM unnest(booking_item_tickets_ahead) AS a);
        END IF;
    END IF;
    promoted_id := promoted_ids[1];
    promoted_user_id := promoted_user_ids[1];
    promoted_created_at := promoted_created_ats[1];
    promoted_updated_at := promoted_updated_ats[1];
    outcome := 'ok';
    RETURN NEXT;
END
$$;
