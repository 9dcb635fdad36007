-- accept_offer: the user takes the tickets offered to them (issue 16): their `offered` booking becomes
-- `confirmed`, under the event lock, with an `accepted` ledger entry; with holds on (issue 25) it is
-- `held` instead, until hold_expires_at, with a `held` entry, for the payment to confirm. The tickets were
-- taken for the offer, so no count of the event changes but held_tickets; its updated_at does, before the ledger entry, whose webhook
-- message reports the event as the accept left it. The database's clock decides: an offer past
-- offer_expires_at is refused ('offer_expired') whether or not the sweeper (expire_offers) has come yet,
-- and the refusal changes nothing.
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). Every statement names the event (p_event_id), so that on a table sharded by
-- event_id each one runs on one shard (docs/scaling.md). It returns one row: the outcome and the
-- booking as it is now. Outcomes: 'ok', 'event_not_found', 'event_cancelled', 'no_offer', 'offer_expired'.
-- Ticket types (issue 26): an offer is of the whole booking, all its items; the ledger entry carries
-- them, and the booking's items are returned (NULL on an event of one type: its quantity is of that type).

CREATE OR REPLACE FUNCTION accept_offer(p_event_id uuid, p_user_id text, p_request_id text)
RETURNS TABLE (outcome text, booking_id uuid, booking_status text, booking_created_at timestamptz,
               booking_updated_at timestamptz, booking_quantity integer, booking_offer_expires_at timestamptz,
               booking_hold_expires_at timestamptz, booking_payment_reference text, booking_item_types text[],
               booking_item_quantities integer[])
LANGUAGE plpgsql AS $$
DECLARE
    ev events%ROWTYPE;
    held bookings%ROWTYPE;
    -- Read once the lock is held: an accept that waited for the lock behind the sweeper finds its verdict.
    changed_at timestamptz;
BEGIN
    SELECT * INTO ev FROM events WHERE id = p_event_id FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'event_not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    IF ev.status = 'cancelled' THEN
        outcome := 'event_cancelled';
        RETURN NEXT;
        RETURN;
    END IF;
    changed_at := clock_timestamp();
    -- The user's active booking, else their latest one (ix_bookings_user_history).
    SELECT * INTO held FROM bookings b
     WHERE b.event_id = p_event_id AND b.user_id = p_user_id
     ORDER BY b.status = 'cancelled', b.seq DESC
     LIMIT 1;
    -- An offer the sweeper has expired is offer_expired too, as it was before the sweep, until the user
    -- books again: the client's answer does not depend on whether the sweeper came first.
    outcome := CASE WHEN held.status = 'offered' AND held.offer_expires_at > changed_at THEN 'ok'
                    WHEN held.status = 'offered' OR held.cancel_reason = 'expired' THEN 'offer_expired'
                    ELSE 'no_offer' END;
    IF outcome <> 'ok' THEN
        RETURN NEXT;
        RETURN;
    END IF;
    UPDATE bookings b
       SET status = CASE WHEN ev.hold_ttl_seconds IS NULL THEN 'confirmed' ELSE 'held' END, updated_at = changed_at,
           hold_expires_at = changed_at + make_interval(secs => ev.hold_ttl_seconds)
     WHERE b.event_id = p_event_id AND b.id = held.id
    RETURNING b.id, b.status, b.created_at, b.updated_at, b.quantity, b.offer_expires_at, b.hold_expires_at,
              b.payment_reference, b.item_types, b.item_quantities
    INTO booking_id, booking_status, booking_created_at, booking_updated_at, booking_quantity,
         booking_offer_expires_at, booking_hold_expires_at, booking_payment_reference, booking_item_types,
         booking_item_quantities;
    UPDATE events
       SET held_tickets = held_tickets + CASE WHEN booking_status = 'held' THEN held.quantity ELSE 0 END,
           updated_at = changed_at
     WHERE id = p_event_id;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at,
                                item_types, item_quantities)
    VALUES (p_event_id, held.id, p_user_id, CASE booking_status WHEN 'held' THEN 'held' ELSE 'accepted' END,
            p_request_id, held.quantity, changed_at, held.item_types, held.item_quantities);
    RETURN NEXT;
END
$$;
