-- confirm_hold: the payment for a hold arrived (issue 25): the user's `held` booking becomes `confirmed`,
-- keeping `p_payment_reference`, under the event lock, with a `paid` ledger entry (its webhook message is
-- booking.confirmed). The tickets were taken for the hold, so no count of the event changes but
-- held_tickets; its updated_at does, before the ledger entry. The database's clock decides, as for an
-- offer's accept: a hold past hold_expires_at is refused ('hold_expired') whether or not the sweeper
-- (expire_holds) has come yet, and so is a hold the sweeper expired, until the user books again. A booking
-- already confirmed by a confirm with the same reference (or both without one) is 'ok' again, unchanged,
-- so that a payment backend may retry; with another reference it is 'already_confirmed'.
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). Every statement names the event (p_event_id), so that on a table sharded by
-- event_id each one runs on one shard (docs/scaling.md). It returns one row: the outcome and the
-- booking as it is now, and whether the confirm was a repeat (`repeated`: nothing changed). Outcomes: 'ok', 'event_not_found', 'event_cancelled', 'no_hold', 'hold_expired',
-- 'already_confirmed'. Ticket types (issue 26): a hold is of the whole booking, all its items; the ledger
-- entry carries them, and the booking's items are returned (NULL on an event of one type).

CREATE OR REPLACE FUNCTION confirm_hold(p_event_id uuid, p_user_id text, p_request_id text, p_payment_reference text)
RETURNS TABLE (outcome text, booking_id uuid, booking_status text, booking_created_at timestamptz,
               booking_updated_at timestamptz, booking_quantity integer, booking_offer_expires_at timestamptz,
               booking_hold_expires_at timestamptz, booking_payment_reference text, repeated boolean,
               booking_item_types text[], booking_item_quantities integer[])
LANGUAGE plpgsql AS $$
DECLARE
    ev events%ROWTYPE;
    held bookings%ROWTYPE;
    -- Read once the lock is held: a confirm that waited for the lock behind the sweeper finds its verdict.
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
    -- Only a confirm takes a hold to confirmed, so a confirmed booking with a hold's deadline was paid.
    outcome := CASE WHEN held.status = 'held' AND held.hold_expires_at > changed_at THEN 'ok'
                    WHEN held.status = 'held' OR held.cancel_reason = 'hold_expired' THEN 'hold_expired'
                    WHEN held.status = 'confirmed' AND held.hold_expires_at IS NOT NULL THEN
                         CASE WHEN held.payment_reference IS NOT DISTINCT FROM p_payment_reference THEN 'repeat'
                              ELSE 'already_confirmed' END
                    ELSE 'no_hold' END;
    IF outcome = 'ok' THEN
        UPDATE bookings b SET status = 'confirmed', payment_reference = p_payment_reference, updated_at = changed_at
         WHERE b.event_id = p_event_id AND b.id = held.id
        RETURNING b.* INTO held;
        UPDATE events SET held_tickets = held_tickets - held.quantity, updated_at = changed_at WHERE id = p_event_id;
        INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at,
                                    item_types, item_quantities)
        VALUES (p_event_id, held.id, p_user_id, 'paid', p_request_id, held.quantity, changed_at, held.item_types,
                held.item_quantities);
    END IF;
    IF outcome IN ('ok', 'repeat') THEN
        repeated := outcome = 'repeat';
        outcome := 'ok';
        SELECT held.id, held.status, held.created_at, held.updated_at, held.quantity, held.offer_expires_at,
               held.hold_expires_at, held.payment_reference, held.item_types, held.item_quantities
          INTO booking_id, booking_status, booking_created_at, booking_updated_at, booking_quantity,
               booking_offer_expires_at, booking_hold_expires_at, booking_payment_reference, booking_item_types,
               booking_item_quantities;
    END IF;
    RETURN NEXT;
END
$$;
