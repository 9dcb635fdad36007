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
-- Ticket types (issue 26): `p_item_types` (codes) and `p_item_quantities` name the items, all or none;
-- `p_quantity` is then their sum. On an event of one type the items are only checked (one, of its type)
-- and the booking is booked as a bare quantity, by the same statements as before: no item arrays, no
-- type counters, nothing more read or written. Whether a booking waits is the rule of the back of the
-- queue (waits_at_back.sql), with types the FIFO walk's as for the newest entry. A waiting booking with
-- types keeps each item's place in its type's queue (item_tickets_before). Its types' counters are
-- updated in one statement.
-- Outcomes: 'ok', 'event_not_found', 'event_cancelled', 'sales_closed', 'quantity_above_limit' (more than the event's max_per_booking,
-- or than its total_tickets: it could never be confirmed and would block the queue), 'already_booked';
-- with types, 'items_required' (a bare quantity on an event of several types), 'unknown_ticket_type',
-- 'items_above_limit' (the items' sum above the event's limits, or an item above its type's
-- max_per_booking or total_tickets).
-- Fair sale opening (issue 27): until an event with sales_open_at is drawn, a booking joins its lobby
-- instead (join_lobby.sql), its items checked as here first. The draw (draw_lobby.sql) then books each
-- lobby entry here, in rank order, with its items and `p_lobby_rank`: the same decision, taken on the
-- entry's own row (an UPDATE, same booking id, a new seq so that the queue is in rank order) rather than a
-- new one; its ledger entry carries the rank. A drawn entry keeps the tickets it joined with: the limits
-- passed them then, and a later cut does not refuse them now (as a waiting entry's, update_event.sql).

CREATE OR REPLACE FUNCTION book_ticket(p_event_id uuid, p_user_id text, p_request_id text, p_quantity integer DEFAULT 1,
                                       p_item_types text[] DEFAULT NULL, p_item_quantities integer[] DEFAULT NULL,
                                       p_lobby_rank integer DEFAULT NULL)
RETURNS TABLE (outcome text, booking_id uuid, booking_status text, waiting_position integer,
               booking_created_at timestamptz, booking_updated_at timestamptz,
               booking_quantity integer, tickets_ahead bigint, booking_hold_expires_at timestamptz,
               item_types text[], item_quantities integer[], item_tickets_ahead bigint[])
LANGUAGE plpgsql AS $$
DECLARE
    ev events%ROWTYPE;
    waits boolean;
    typed boolean;  -- the event has several types: the booking has items
    positions integer[];  -- of the items' types, in the items' order
    items record;  -- what the items' types say of them
    wanted integer := p_quantity;  -- the booking's tickets
    ordinal bigint;  -- a waiting entry's place in the queue (waiting_place.sql)
    tickets_before bigint;
    items_before bigint[];  -- a waiting entry's place in each of its types' queues (with types)
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
    typed := ev.ticket_type_count > 1;
    IF p_item_types IS NOT NULL OR typed THEN
        SELECT count(t.position) AS known, sum(i.q) AS total,
               array_agg(t.position ORDER BY t.position) AS positions,
               array_agg(i.code ORDER BY t.position) AS codes, array_agg(i.q ORDER BY t.position) AS quantities,
               array_agg(t.waiting_tickets ORDER BY t.position) AS waiting,
               bool_or(i.q > least(coalesce(t.max_per_booking, ev.max_per_booking), t.total_tickets)) AS above,
               bool_and(i.q <= t.total_tickets - t.taken_tickets) AS fit, bool_or(t.waiting_tickets > 0) AS queued
          INTO items
          FROM unnest(p_item_types, p_item_quantities) AS i (code, q)
          LEFT JOIN ticket_types t ON t.event_id = p_event_id AND t.code = i.code;
        outcome := CASE WHEN p_item_types IS NULL THEN 'items_required'
                        WHEN items.known < cardinality(p_item_types) THEN 'unknown_ticket_type'
                        WHEN p_lobby_rank IS NULL
                             AND (items.above OR items.total > least(ev.max_per_booking, ev.total_tickets))
                             THEN 'items_above_limit' END;
        IF outcome IS NOT NULL THEN
            RETURN NEXT;
            RETURN;
        END IF;
        wanted := items.total;
    -- More than the event allows, or than it has (it could never be confirmed and would block the queue).
    ELSIF p_quantity > least(ev.max_per_booking, ev.total_tickets) AND p_lobby_rank IS NULL THEN
        outcome := 'quantity_above_limit';
        RETURN NEXT;
        RETURN;
    END IF;
    changed_at := clock_timestamp();
    IF typed THEN
        item_types := items.codes;
        item_quantities := items.quantities;
        positions := items.positions;
    END IF;
    -- Issue 27: before the draw is done, a booking is an entry in the lobby, which the draw books.
    IF ev.sales_open_at IS NOT NULL AND ev.drawn_at IS NULL AND p_lobby_rank IS NULL THEN
        RETURN QUERY SELECT * FROM join_lobby(ev, p_user_id, p_request_id, wanted, item_types, item_quantities,
                                              changed_at);
        RETURN;
    END IF;
    IF typed THEN
        waits := waits_at_back(ev, wanted, items.queued, items.fit);
    ELSE
        waits := waits_at_back(ev, wanted, false, true);
    END IF;
    booking_status := CASE WHEN waits THEN 'waiting' WHEN ev.hold_ttl_seconds IS NULL THEN 'confirmed' ELSE 'held' END;
    ordinal := CASE WHEN waits THEN ev.queue_joined_entries + 1 END;
    tickets_before := CASE WHEN waits THEN ev.queue_joined_tickets END;
    hold_until := CASE WHEN NOT waits THEN changed_at + make_interval(secs => ev.hold_ttl_seconds) END;
    IF waits AND typed THEN
        SELECT array_agg(t.queue_joined_tickets ORDER BY t.position) INTO items_before
          FROM ticket_types t
         WHERE t.event_id = p_event_id AND t.position = ANY (positions);
    END IF;
    IF p_lobby_rank IS NULL THEN
        INSERT INTO bookings AS b (event_id, user_id, status, quantity, queue_ordinal, queue_tickets_before,
                                   created_at, updated_at, hold_expires_at, item_types, item_quantities,
                                   item_tickets_before)
        VALUES (p_event_id, p_user_id, booking_status, wanted, ordinal, tickets_before, changed_at, changed_at,
                hold_until, item_types, item_quantities, items_before)
        ON CONFLICT (event_id, user_id) WHERE status <> 'cancelled' DO NOTHING
        RETURNING b.id, b.created_at, b.updated_at, b.quantity, b.hold_expires_at
        INTO booking_id, booking_created_at, booking_updated_at, booking_quantity, booking_hold_expires_at;
    ELSE  -- issue 27: the lobby entry drawn at this rank
        UPDATE bookings b
           SET status = booking_status, seq = DEFAULT, queue_ordinal = ordinal, queue_tickets_before = tickets_before,
               item_tickets_before = items_before, updated_at = changed_at, hold_expires_at = hold_until,
               lobby_rank = p_lobby_rank
         WHERE b.event_id = p_event_id AND b.user_id = p_user_id AND b.status = 'lobby'
        RETURNING b.id, b.created_at, b.updated_at, b.quantity, b.hold_expires_at
        INTO booking_id, booking_created_at, booking_updated_at, booking_quantity, booking_hold_expires_at;
    END IF;
    IF NOT FOUND THEN
        outcome := 'already_booked';
        booking_status := NULL;
        item_types := NULL;
        item_quantities := NULL;
        RETURN NEXT;
        RETURN;
    END IF;
    UPDATE events
       SET available_tickets = available_tickets - CASE WHEN waits THEN 0 ELSE booking_quantity END,
           held_tickets = held_tickets + CASE WHEN booking_status = 'held' THEN booking_quantity ELSE 0 END,
           waiting_count = waiting_count + waits::int,
           waiting_tickets = waiting_tickets + CASE WHEN waits THEN booking_quantity ELSE 0 END,
           queue_joined_entries = queue_joined_entries + waits::int,
           queue_joined_tickets = queue_joined_tickets + CASE WHEN waits THEN booking_quantity ELSE 0 END,
           lobby_count = lobby_count - CASE WHEN p_lobby_rank IS NULL THEN 0 ELSE 1 END,
           updated_at = changed_at
     WHERE id = p_event_id;
    IF typed THEN
        UPDATE ticket_types t
           SET taken_tickets = t.taken_tickets + CASE WHEN waits THEN 0 ELSE i.q END,
               waiting_tickets = t.waiting_tickets + CASE WHEN waits THEN i.q ELSE 0 END,
               queue_joined_tickets = t.queue_joined_tickets + CASE WHEN waits THEN i.q ELSE 0 END
          FROM unnest(positions, item_quantities) AS i (p, q)
         WHERE t.event_id = p_event_id AND t.position = i.p;
    END IF;
    IF waits AND ev.queue_joined_entries > 0 AND ev.queue_joined_entries & (ev.queue_joined_entries - 1) = 0 THEN
        -- The ordinals outgrow the tree (a power of two): the new root spans the old one and ordinals
        -- that nobody has had yet, so it starts as a copy of the old root (queue_cover_nodes.sql), in
        -- every tree of the event (the event-wide one, and each type's once it has several).
        INSERT INTO queue_departures (event_id, ticket_type, node, entries, tickets)
        SELECT p_event_id, d.ticket_type, 2 * d.node, d.entries, d.tickets
          FROM queue_departures d
         WHERE d.event_id = p_event_id AND d.node = ev.queue_joined_entries;
    END IF;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at,
                                item_types, item_quantities, lobby_rank)
    VALUES (p_event_id, booking_id, p_user_id,
            CASE booking_status WHEN 'waiting' THEN 'waitlisted' WHEN 'held' THEN 'held' ELSE 'booked' END,
            p_request_id, booking_quantity, changed_at, item_types, item_quantities, p_lobby_rank);
    -- New entries join at the back: everyone waiting is ahead (of each item, everyone waiting for its type).
    waiting_position := CASE WHEN waits THEN ev.waiting_count + 1 END;
    IF waits AND typed THEN
        item_tickets_ahead := items.waiting;
        tickets_ahead := (SELECT sum(w) FROM unnest(items.waiting) AS w);
    ELSIF waits THEN
        tickets_ahead := ev.waiting_tickets;
    END IF;
    outcome := 'ok';
    RETURN NEXT;
END
$$;
