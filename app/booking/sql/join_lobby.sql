-- join_lobby: a booking at an event whose sale opens with a draw (issue 27), before the draw is done: the
-- user's entry in the lobby, status `lobby`, its `p_quantity` tickets wanted (on an event of several types,
-- its items `p_item_types` and `p_item_quantities`, as book_ticket checked them; NULL on an event of one
-- type, as for every booking there), no tickets taken, no place in the queue and no type's counter moved; one per user (the index of active bookings), cancellable (cancel_booking.sql). Called by
-- book_ticket under the event's row lock, once the event's own refusals are passed, with the event row `ev`
-- and the time the lock was got; it returns book_ticket's row.
--
-- Before the draw starts (ev.draw_started_at NULL) the entry has no rank: the draw ranks every entry at
-- once (draw_lobby.sql). Once it has started, the entry is a late arrival: it is ranked now, after every
-- rank given (ev.lobby_ranked + 1), so late arrivals are booked after every drawn entry, in arrival order.
-- The ledger gets a `lobby` entry (no webhook: the draw's booking of the entry sends its ordinary message).
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). Every statement names the event (ev.id), so that on a table sharded by event_id
-- each one runs on one shard (docs/scaling.md). Outcomes: 'ok', 'already_booked'.

CREATE OR REPLACE FUNCTION join_lobby(ev events, p_user_id text, p_request_id text, p_quantity integer,
                                      p_item_types text[], p_item_quantities integer[], p_changed_at timestamptz)
RETURNS TABLE (outcome text, booking_id uuid, booking_status text, waiting_position integer,
               booking_created_at timestamptz, booking_updated_at timestamptz,
               booking_quantity integer, tickets_ahead bigint, booking_hold_expires_at timestamptz,
               item_types text[], item_quantities integer[], item_tickets_ahead bigint[])
LANGUAGE plpgsql AS $$
DECLARE
    late boolean := ev.draw_started_at IS NOT NULL;
BEGIN
    INSERT INTO bookings AS b (event_id, user_id, status, quantity, created_at, updated_at, item_types,
                               item_quantities)
    VALUES (ev.id, p_user_id, 'lobby', p_quantity, p_changed_at, p_changed_at, p_item_types, p_item_quantities)
    ON CONFLICT (event_id, user_id) WHERE status <> 'cancelled' DO NOTHING
    RETURNING b.id, b.status, b.created_at, b.updated_at, b.quantity
    INTO booking_id, booking_status, booking_created_at, booking_updated_at, booking_quantity;
    IF NOT FOUND THEN
        outcome := 'already_booked';
        RETURN NEXT;
        RETURN;
    END IF;
    IF late THEN
        INSERT INTO lobby_ranks (event_id, rank, booking_id) VALUES (ev.id, ev.lobby_ranked + 1, booking_id);
    END IF;
    UPDATE events e
       SET lobby_count = e.lobby_count + 1, lobby_ranked = e.lobby_ranked + late::int, updated_at = p_changed_at
     WHERE e.id = ev.id;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at, item_types,
                                item_quantities)
    VALUES (ev.id, booking_id, p_user_id, 'lobby', p_request_id, p_quantity, p_changed_at, p_item_types,
            p_item_quantities);
    item_types := p_item_types;
    item_quantities := p_item_quantities;
    outcome := 'ok';
    RETURN NEXT;
END
$$;
