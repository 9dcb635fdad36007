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
-- Outcomes: 'ok', 'event_not_found', 'event_cancelled', 'booking_not_found', 'already_cancelled', 'quantity_above_held',
-- 'no_offer', 'offer_expired'.
-- A quantity below 1 is not a request the service sends: it raises check_violation.
-- An entry in the lobby (issue 27) holds no ticket and no place: it leaves the lobby (or wants fewer), and
-- nothing else changes; once ranked, its rank is passed over by the draw (seat_lobby.sql).

CREATE OR REPLACE FUNCTION cancel_booking(p_event_id uuid, p_user_id text, p_request_id text, p_quantity integer DEFAULT NULL,
                                          p_decline boolean DEFAULT false)
RETURNS TABLE (outcome text, booking_id uuid, booking_created_at timestamptz,
               booking_updated_at timestamptz, promoted_id uuid, promoted_user_id text,
               promoted_created_at timestamptz, promoted_updated_at timestamptz,
               booking_status text, booking_quantity integer, waiting_position integer, tickets_ahead bigint,
               promoted_ids uuid[], promoted_user_ids text[], promoted_quantities integer[],
               promoted_created_ats timestamptz[], promoted_updated_ats timestamptz[],
               booking_offer_expires_at timestamptz, booking_cancel_reason text, promoted_offer_expires_at timestamptz,
               promoted_status text, booking_hold_expires_at timestamptz, booking_payment_reference text,
               promoted_hold_expires_at timestamptz, booking_lobby_rank integer)
LANGUAGE plpgsql AS $$
DECLARE
    ev events%ROWTYPE;
    held bookings%ROWTYPE;
    released integer;  -- the tickets the booking gives up
    available integer;  -- the event's, once they are released
    promoted_tickets integer;
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
    changed_at := clock_timestamp();
    -- The database's clock decides: an offer past its time is expired, whether or not swept yet.
    IF p_decline AND held.offer_expires_at <= changed_at THEN
        outcome := 'offer_expired';
        RETURN NEXT;
        RETURN;
    END IF;
    released := coalesce(p_quantity, held.quantity);
    booking_status := CASE WHEN released = held.quantity THEN 'cancelled' ELSE held.status END;
    IF held.status = 'offered' AND booking_status = 'cancelled' THEN
        reason := CASE WHEN held.offer_expires_at <= changed_at THEN 'expired' ELSE 'declined' END;
    ELSIF held.status = 'held' AND booking_status = 'cancelled' AND held.hold_expires_at <= changed_at THEN
        reason := 'hold_expired';
    END IF;
    -- A whole cancel keeps the quantity it held, as history; a partial one keeps the rest.
    UPDATE bookings b
       SET status = booking_status, updated_at = changed_at, cancel_reason = reason,
           quantity = b.quantity - CASE WHEN booking_status = 'cancelled' THEN 0 ELSE released END
     WHERE b.event_id = p_event_id AND b.id = held.id
    RETURNING b.id, b.created_at, b.updated_at, b.quantity, b.offer_expires_at, b.cancel_reason, b.hold_expires_at,
              b.payment_reference, b.lobby_rank
    INTO booking_id, booking_created_at, booking_updated_at, booking_quantity, booking_offer_expires_at,
         booking_cancel_reason, booking_hold_expires_at, booking_payment_reference, booking_lobby_rank;
    IF held.status = 'waiting' THEN
        -- Left from the middle (or shrank): counted at its arrival rank, for the places behind it.
        INSERT INTO queue_departures AS d (event_id, node, entries, tickets)
        SELECT p_event_id, node, (booking_status = 'cancelled')::int, released
          FROM unnest(queue_cover_nodes(held.queue_ordinal, ev.queue_joined_entries)) AS node
        ON CONFLICT (event_id, node) DO UPDATE
           SET entries = d.entries + excluded.entries, tickets = d.tickets + excluded.tickets;
    END IF;
    available := ev.available_tickets + CASE WHEN held.status IN ('waiting', 'lobby') THEN 0 ELSE released END;
    SELECT * INTO promoted_status, promoted_expires_at
      FROM promotion_terms(ev.promotion, ev.offer_ttl_seconds, ev.hold_ttl_seconds, changed_at);
    promoted_offer_expires_at := CASE WHEN promoted_status = 'offered' THEN promoted_expires_at END;
    promoted_hold_expires_at := CASE WHEN promoted_status = 'held' THEN promoted_expires_at END;
    IF available > 0 THEN
        SELECT * INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats,
                      promoted_updated_ats, promoted_tickets
          FROM promote_waiting(p_event_id, available, changed_at, promoted_status, promoted_expires_at);
    ELSE  -- nobody fits in no ticket: a waiting entry that leaves a sold-out event, the usual case
        SELECT '{}', '{}', '{}', '{}', '{}', 0
          INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats,
               promoted_updated_ats, promoted_tickets;
    END IF;
    -- The event row first, then the ledger: the webhook trigger snapshots the event at each entry.
    UPDATE events
       SET available_tickets = available - promoted_tickets,
           waiting_count = waiting_count - (held.status = 'waiting' AND booking_status = 'cancelled')::int
                           - cardinality(promoted_ids),
           waiting_tickets = waiting_tickets - CASE WHEN held.status = 'waiting' THEN released ELSE 0 END
                             - promoted_tickets,
           queue_promoted_entries = queue_promoted_entries + cardinality(promoted_ids),
           queue_promoted_tickets = queue_promoted_tickets + promoted_tickets,
           held_tickets = held_tickets - CASE WHEN held.status = 'held' THEN released ELSE 0 END
                          + CASE WHEN promoted_status = 'held' THEN promoted_tickets ELSE 0 END,
           lobby_count = lobby_count - (held.status = 'lobby' AND booking_status = 'cancelled')::int,
           updated_at = changed_at
     WHERE id = p_event_id;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
    VALUES (p_event_id, booking_id, p_user_id,
            CASE WHEN booking_status = 'cancelled' THEN coalesce(reason, 'cancelled') ELSE 'reduced' END, p_request_id,
            released,
            changed_at);
    IF promoted_tickets > 0 THEN
        INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
        SELECT p_event_id, p.id, p.user_id, CASE promoted_status WHEN 'confirmed' THEN 'promoted' ELSE promoted_status END,
               p_request_id, p.quantity, changed_at
          FROM unnest(promoted_ids, promoted_user_ids, promoted_quantities) WITH ORDINALITY
               AS p (id, user_id, quantity, step)
         ORDER BY p.step;
    END IF;
    IF booking_id = ANY (promoted_ids) THEN  -- a head that shrank until it fitted
        booking_status := promoted_status;
        booking_offer_expires_at := promoted_offer_expires_at;
        booking_hold_expires_at := promoted_hold_expires_at;
    ELSIF booking_status = 'waiting' THEN
        SELECT * INTO waiting_position, tickets_ahead
          FROM waiting_place(p_event_id, held.queue_ordinal, held.queue_tickets_before);
    END IF;
    promoted_id := promoted_ids[1];
    promoted_user_id := promoted_user_ids[1];
    promoted_created_at := promoted_created_ats[1];
    promoted_updated_at := promoted_updated_ats[1];
    outcome := 'ok';
    RETURN NEXT;
END
$$;
