-- book_ticket: book `p_quantity` tickets (default 1), all or none: confirmed if nobody is waiting and
-- they are all available, else one waiting entry at the back of the queue; with holds on (the event's
-- hold_ttl_seconds, issue 25) the tickets are `held` instead of confirmed, until hold_expires_at, for the
-- payment to confirm (confirm_hold.sql): the same statements, one more column in each. Append the change to the
-- ledger (booking_events) with the request id it is given (the server's own id for the request, never
-- a client's X-Request-ID: app/web/request_context.py).
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). The service calls it as one statement, so a booking costs one round trip
-- while the event row is locked. Inside a VOLATILE plpgsql function every statement takes a fresh
-- snapshot, so after `SELECT ... FOR UPDATE` returns it sees everything the previous lock holder
-- committed (a single CTE statement would not: it keeps the snapshot it took before waiting).
-- A v1 call (three arguments) books one ticket: with single tickets only, "nobody waits and one is
-- left" is v1's "one is left", so it behaves exactly as v1 did.
-- A waiting entry gets its place in the queue from the event's running totals (queue_ordinal,
-- queue_tickets_before; see waiting_place.sql).
-- Outcomes: 'ok', 'event_not_found', 'event_cancelled', 'sales_closed', 'quantity_above_limit' (more than the event's max_per_booking,
-- or than its total_tickets: it could never be confirmed and would block the queue), 'already_booked'.
-- Fair sale opening (issue 27): until an event with sales_open_at is drawn, a booking joins its lobby
-- instead (join_lobby.sql). The draw (draw_lobby.sql) then books each lobby entry here, in rank order,
-- with `p_lobby_rank`: the same decision, taken on the entry's own row (an UPDATE, same booking id, a new
-- seq so that the queue is in rank order) rather than a new one; its ledger entry carries the rank.

CREATE OR REPLACE FUNCTION book_ticket(p_event_id uuid, p_user_id text, p_request_id text, p_quantity integer DEFAULT 1,
                                       p_lobby_rank integer DEFAULT NULL)
RETURNS TABLE (outcome text, booking_id uuid, booking_status text, waiting_position integer,
               booking_created_at timestamptz, booking_updated_at timestamptz,
               booking_quantity integer, tickets_ahead bigint, booking_hold_expires_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    ev events%ROWTYPE;
    waits boolean;
    ordinal bigint;  -- a waiting entry's place in the queue (waiting_place.sql)
    tickets_before bigint;
    hold_until timestamptz;
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
    -- An event called off takes no booking, nor one whose sales the organiser closed.
    IF ev.status = 'cancelled' OR NOT ev.sales_open THEN
        outcome := CASE WHEN ev.status = 'cancelled' THEN 'event_cancelled' ELSE 'sales_closed' END;
        RETURN NEXT;
        RETURN;
    END IF;
    -- More than the event allows, or than it has (it could never be confirmed and would block the queue).
    -- A lobby entry drawn keeps the quantity it joined with (update_event keeps totals above it).
    IF p_quantity > least(ev.max_per_booking, ev.total_tickets) AND p_lobby_rank IS NULL THEN
        outcome := 'quantity_above_limit';
        RETURN NEXT;
        RETURN;
    END IF;
    changed_at := clock_timestamp();
    -- Issue 27: before the draw is done, a booking is an entry in the lobby, which the draw books.
    IF ev.sales_open_at IS NOT NULL AND ev.drawn_at IS NULL AND p_lobby_rank IS NULL THEN
        RETURN QUERY SELECT * FROM join_lobby(ev, p_user_id, p_request_id, p_quantity, changed_at);
        RETURN;
    END IF;
    -- All or nothing, and nobody overtakes a waiting entry, not even a smaller booking.
    waits := ev.waiting_count > 0 OR p_quantity > ev.available_tickets;
    booking_status := CASE WHEN waits THEN 'waiting' WHEN ev.hold_ttl_seconds IS NULL THEN 'confirmed' ELSE 'held' END;
    ordinal := CASE WHEN waits THEN ev.queue_joined_entries + 1 END;
    tickets_before := CASE WHEN waits THEN ev.queue_joined_tickets END;
    hold_until := CASE WHEN NOT waits THEN changed_at + make_interval(secs => ev.hold_ttl_seconds) END;
    IF p_lobby_rank IS NULL THEN
        INSERT INTO bookings AS b (event_id, user_id, status, quantity, queue_ordinal, queue_tickets_before,
                                   created_at, updated_at, hold_expires_at)
        VALUES (p_event_id, p_user_id, booking_status, p_quantity, ordinal, tickets_before, changed_at, changed_at,
                hold_until)
        ON CONFLICT (event_id, user_id) WHERE status <> 'cancelled' DO NOTHING
        RETURNING b.id, b.created_at, b.updated_at, b.quantity, b.hold_expires_at
        INTO booking_id, booking_created_at, booking_updated_at, booking_quantity, booking_hold_expires_at;
    ELSE  -- issue 27: the lobby entry drawn at this rank
        UPDATE bookings b
           SET status = booking_status, seq = DEFAULT, queue_ordinal = ordinal, queue_tickets_before = tickets_before,
               updated_at = changed_at, hold_expires_at = hold_until, lobby_rank = p_lobby_rank
         WHERE b.event_id = p_event_id AND b.user_id = p_user_id AND b.status = 'lobby'
        RETURNING b.id, b.created_at, b.updated_at, b.quantity, b.hold_expires_at
        INTO booking_id, booking_created_at, booking_updated_at, booking_quantity, booking_hold_expires_at;
    END IF;
    IF NOT FOUND THEN
        outcome := 'already_booked';
        booking_status := NULL;
        RETURN NEXT;
        RETURN;
    END IF;
    UPDATE events
       SET available_tickets = available_tickets - CASE WHEN waits THEN 0 ELSE p_quantity END,
           held_tickets = held_tickets + CASE WHEN booking_status = 'held' THEN p_quantity ELSE 0 END,
           waiting_count = waiting_count + waits::int,
           waiting_tickets = waiting_tickets + CASE WHEN waits THEN p_quantity ELSE 0 END,
           queue_joined_entries = queue_joined_entries + waits::int,
           queue_joined_tickets = queue_joined_tickets + CASE WHEN waits THEN p_quantity ELSE 0 END,
           lobby_count = lobby_count - CASE WHEN p_lobby_rank IS NULL THEN 0 ELSE 1 END,
           updated_at = changed_at
     WHERE id = p_event_id;
    IF waits AND ev.queue_joined_entries > 0 AND ev.queue_joined_entries & (ev.queue_joined_entries - 1) = 0 THEN
        -- The ordinals outgrow the tree (a power of two): the new root spans the old one and ordinals
        -- that nobody has had yet, so it starts as a copy of the old root (queue_cover_nodes.sql).
        INSERT INTO queue_departures (event_id, node, entries, tickets)
        SELECT p_event_id, 2 * d.node, d.entries, d.tickets
          FROM queue_departures d
         WHERE d.event_id = p_event_id AND d.node = ev.queue_joined_entries;
    END IF;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at, lobby_rank)
    VALUES (p_event_id, booking_id, p_user_id,
            CASE booking_status WHEN 'waiting' THEN 'waitlisted' WHEN 'held' THEN 'held' ELSE 'booked' END,
            p_request_id, p_quantity, changed_at, p_lobby_rank);
    -- New entries join at the back: everyone waiting is ahead.
    waiting_position := CASE WHEN waits THEN ev.waiting_count + 1 END;
    tickets_ahead := CASE WHEN waits THEN ev.waiting_tickets END;
    outcome := 'ok';
    RETURN NEXT;
END
$$;
