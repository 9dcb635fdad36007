"""Ticket types: several kinds of tickets in one event, one booking across them, one fair queue (issue 26).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-08

Contract v3, "Ticket types":
- `ticket_types`: an event's types by position (1..20, the order they were added), each with its code
  (unique in the event), name, total and maxPerBooking (NULL: the event's), and the counters kept under
  the event lock: taken_tickets (in confirmed, offered and held bookings), waiting_tickets (wanted by
  waiting entries) and queue_joined_tickets (ever queued: the per-item snapshot a place is counted from).
  Every event has one at least: existing events get `standard` (position 1, the event's total), and a
  trigger gives every new event the same unless it is opened with types of its own. While an event has
  one type its counters are not written: they follow from the event row, so the hot path writes nothing more.
- `events.ticket_type_count` (1..20), which tells the booking functions which path an event takes.
- bookings gain `item_types` (codes), `item_quantities` and `item_tickets_before` (each item's place in its
  type's queue, at join); NULL on an event of one type, meaning all of its quantity is of that type. A
  partial index on the waiting entries of events with several types (by quantity) answers the new
  booking's "does any waiting entry want more than the event has left" in one probe.
- queue_departures gains `ticket_type` in its key: 0 is the event-wide tree (entries, tickets) as before,
  k the tickets of type position k that left the queue other than from its head.
- The ledger gains the items a booking's entry moved, and the kinds type_added and type_changed (the
  type's code and totals from and to), so that a replay of the ledger follows the types.

Downgrade refuses while any event has more than one type or a type other than `standard`: the schema
before it cannot say which tickets are of which type.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

from app.database.functions import create_or_replace, drop

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

# The definitions this revision installs, frozen (app/database/functions.py); each is its
# app/<package>/sql/<function>.sql file as of this revision, and *_BEFORE as of 0018.
ADD_STANDARD_TICKET_TYPE = """
CREATE OR REPLACE FUNCTION add_standard_ticket_type() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ticket_types (event_id, position, code, total_tickets)
    VALUES (NEW.id, 1, 'standard', NEW.total_tickets)
    ON CONFLICT (event_id, position) DO NOTHING;
    RETURN NULL;
END
$$;
"""
EVENT_TICKET_TYPES = """
CREATE OR REPLACE FUNCTION event_ticket_types(p_event events) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_agg(jsonb_build_object(
               'code', t.code, 'name', t.name, 'total_tickets', t.total_tickets,
               'max_per_booking', coalesce(t.max_per_booking, p_event.max_per_booking),
               'available_tickets', CASE WHEN p_event.status = 'cancelled' THEN t.total_tickets
                                         WHEN p_event.ticket_type_count = 1
                                         THEN t.total_tickets - p_event.total_tickets + p_event.available_tickets
                                         ELSE t.total_tickets - t.taken_tickets END,
               'waiting_tickets', CASE WHEN p_event.status = 'cancelled' THEN 0
                                       WHEN p_event.ticket_type_count = 1 THEN p_event.waiting_tickets
                                       ELSE t.waiting_tickets END)
           ORDER BY t.position)
      FROM ticket_types t
     WHERE t.event_id = p_event.id
$$;
"""
WAITING_ITEM_PLACES = """
CREATE OR REPLACE FUNCTION waiting_item_places(p_event_id uuid, p_ordinal bigint, p_item_types text[],
                                               p_item_tickets_before bigint[])
RETURNS bigint[]
LANGUAGE sql STABLE AS $$
    SELECT array_agg(i.before - CASE WHEN t.position = 1 THEN e.queue_promoted_tickets ELSE 0 END
                     - coalesce((SELECT sum(d.tickets) FROM queue_departures d
                                  WHERE d.event_id = p_event_id AND d.ticket_type = t.position
                                    AND d.node = ANY (queue_prefix_nodes(p_ordinal - 1))), 0)::bigint
                     ORDER BY i.n)
      FROM events e
      CROSS JOIN unnest(p_item_types, p_item_tickets_before) WITH ORDINALITY AS i (code, before, n)
      JOIN ticket_types t ON t.event_id = p_event_id AND t.code = i.code
     WHERE e.id = p_event_id
$$;
"""
PROMOTE_WAITING_TYPES = """
CREATE OR REPLACE FUNCTION promote_waiting_types(
    p_event_id uuid, p_available integer, p_changed_at timestamptz, p_status text, p_expires_at timestamptz,
    OUT promoted_ids uuid[], OUT promoted_user_ids text[], OUT promoted_quantities integer[],
    OUT promoted_created_ats timestamptz[], OUT promoted_updated_ats timestamptz[], OUT promoted_tickets integer,
    OUT promoted_items jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    codes text[];  -- the event's types by position
    type_room integer[];  -- by position: total less taken, less what this walk promoted
    type_waiting bigint[];  -- by position: tickets wanted by the entries not promoted yet
    promoted_by_type integer[];
    blocked boolean[];
    joined bigint;  -- the event's ordinals so far: the trees' size (queue_cover_nodes.sql)
    entry record;
    positions integer[];  -- of the entry's items
    k integer;
    promoted record;
BEGIN
    promoted_ids := '{}';
    promoted_user_ids := '{}';
    promoted_quantities := '{}';
    promoted_created_ats := '{}';
    promoted_updated_ats := '{}';
    promoted_tickets := 0;
    promoted_items := '[]';
    SELECT array_agg(t.code ORDER BY t.position), array_agg(t.total_tickets - t.taken_tickets ORDER BY t.position),
           array_agg(t.waiting_tickets ORDER BY t.position)
      INTO codes, type_room, type_waiting
      FROM ticket_types t WHERE t.event_id = p_event_id;
    promoted_by_type := array_fill(0, ARRAY[cardinality(codes)]);
    blocked := array_fill(false, ARRAY[cardinality(codes)]);
    SELECT e.queue_joined_entries INTO joined FROM events e WHERE e.id = p_event_id;
    FOR entry IN SELECT w.id, w.quantity, w.item_types, w.item_quantities, w.queue_ordinal FROM bookings w
                  WHERE w.event_id = p_event_id AND w.status = 'waiting'
                  ORDER BY w.seq LOOP
        EXIT WHEN entry.quantity > p_available - promoted_tickets;
        positions := ARRAY(SELECT array_position(codes, c) FROM unnest(entry.item_types) WITH ORDINALITY AS i (c, n)
                            ORDER BY i.n);
        IF EXISTS (SELECT 1 FROM unnest(positions, entry.item_quantities) AS i (p, q)
                    WHERE blocked[i.p] OR i.q > type_room[i.p]) THEN
            FOREACH k IN ARRAY positions LOOP
                blocked[k] := true;
            END LOOP;
            -- Every type still wanted is blocked: nobody further can be promoted.
            EXIT WHEN NOT EXISTS (SELECT 1 FROM generate_subscripts(codes, 1) AS t (k)
                                   WHERE type_waiting[t.k] > 0 AND NOT blocked[t.k]);
            CONTINUE;
        END IF;
        UPDATE bookings b
           SET status = p_status, updated_at = p_changed_at,
               offer_expires_at = CASE WHEN p_status = 'offered' THEN p_expires_at END,
               hold_expires_at = CASE WHEN p_status = 'held' THEN p_expires_at END
         WHERE b.event_id = p_event_id AND b.id = entry.id
        RETURNING b.id, b.user_id, b.quantity, b.created_at, b.updated_at, b.queue_ordinal INTO promoted;
        FOR i IN 1 .. cardinality(positions) LOOP
            type_room[positions[i]] := type_room[positions[i]] - entry.item_quantities[i];
            type_waiting[positions[i]] := type_waiting[positions[i]] - entry.item_quantities[i];
            promoted_by_type[positions[i]] := promoted_by_type[positions[i]] + entry.item_quantities[i];
        END LOOP;
        INSERT INTO queue_departures AS d (event_id, ticket_type, node, entries, tickets)
        SELECT p_event_id, tree.ticket_type, node, tree.entries, tree.tickets
          FROM (VALUES (0, 1, promoted.quantity)) AS tree (ticket_type, entries, tickets)
               CROSS JOIN unnest(queue_cover_nodes(promoted.queue_ordinal, joined)) AS node
        UNION ALL
        SELECT p_event_id, i.p, node, 0, i.q
          FROM unnest(positions, entry.item_quantities) AS i (p, q)
               CROSS JOIN unnest(queue_cover_nodes(promoted.queue_ordinal, joined)) AS node
        ON CONFLICT (event_id, ticket_type, node) DO UPDATE
           SET entries = d.entries + excluded.entries, tickets = d.tickets + excluded.tickets;
        promoted_ids := promoted_ids || promoted.id;
        promoted_user_ids := promoted_user_ids || promoted.user_id;
        promoted_quantities := promoted_quantities || promoted.quantity;
        promoted_created_ats := promoted_created_ats || promoted.created_at;
        promoted_updated_ats := promoted_updated_ats || promoted.updated_at;
        promoted_tickets := promoted_tickets + promoted.quantity;
        promoted_items := promoted_items || jsonb_build_array(
            (SELECT jsonb_agg(jsonb_build_array(i.c, i.q) ORDER BY i.n)
               FROM unnest(entry.item_types, entry.item_quantities) WITH ORDINALITY AS i (c, q, n)));
    END LOOP;
    UPDATE ticket_types t
       SET taken_tickets = t.taken_tickets + promoted_by_type[t.position],
           waiting_tickets = t.waiting_tickets - promoted_by_type[t.position]
     WHERE t.event_id = p_event_id AND promoted_by_type[t.position] > 0;
END
$$;
"""
PROMOTE_WAITING = """
CREATE OR REPLACE FUNCTION promote_waiting(
    p_event_id uuid, p_available integer, p_changed_at timestamptz, p_status text, p_expires_at timestamptz,
    p_typed boolean,
    OUT promoted_ids uuid[], OUT promoted_user_ids text[], OUT promoted_quantities integer[],
    OUT promoted_created_ats timestamptz[], OUT promoted_updated_ats timestamptz[], OUT promoted_tickets integer,
    OUT promoted_items jsonb, OUT head_entries integer, OUT head_tickets integer)
LANGUAGE plpgsql AS $$
DECLARE
    head record;
    promoted record;
BEGIN
    IF p_typed THEN
        SELECT * INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats, promoted_updated_ats,
                      promoted_tickets, promoted_items
          FROM promote_waiting_types(p_event_id, p_available, p_changed_at, p_status, p_expires_at);
        head_entries := 0;
        head_tickets := 0;
        RETURN;
    END IF;
    promoted_ids := '{}';
    promoted_user_ids := '{}';
    promoted_quantities := '{}';
    promoted_created_ats := '{}';
    promoted_updated_ats := '{}';
    promoted_tickets := 0;
    -- One walk along the queue, oldest first: the head is confirmed only if it fits, and the first that
    -- does not, stops. Finding each head afresh would step over the index entries of every entry
    -- promoted before it (they stay in the index until a vacuum): quadratic in a large raise.
    FOR head IN SELECT w.id, w.quantity FROM bookings w
                 WHERE w.event_id = p_event_id AND w.status = 'waiting'
                 ORDER BY w.seq LOOP
        EXIT WHEN head.quantity > p_available - promoted_tickets;
        UPDATE bookings b
           SET status = p_status, updated_at = p_changed_at,
               offer_expires_at = CASE WHEN p_status = 'offered' THEN p_expires_at END,
               hold_expires_at = CASE WHEN p_status = 'held' THEN p_expires_at END
         WHERE b.event_id = p_event_id AND b.id = head.id
        RETURNING b.id, b.user_id, b.quantity, b.created_at, b.updated_at INTO promoted;
        promoted_ids := promoted_ids || promoted.id;
        promoted_user_ids := promoted_user_ids || promoted.user_id;
        promoted_quantities := promoted_quantities || promoted.quantity;
        promoted_created_ats := promoted_created_ats || promoted.created_at;
        promoted_updated_ats := promoted_updated_ats || promoted.updated_at;
        promoted_tickets := promoted_tickets + promoted.quantity;
    END LOOP;
    head_entries := cardinality(promoted_ids);
    head_tickets := promoted_tickets;
END
$$;
"""
BOOK_TICKET = """
CREATE OR REPLACE FUNCTION book_ticket(p_event_id uuid, p_user_id text, p_request_id text, p_quantity integer DEFAULT 1,
                                       p_item_types text[] DEFAULT NULL, p_item_quantities integer[] DEFAULT NULL)
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
                        WHEN items.above OR items.total > least(ev.max_per_booking, ev.total_tickets)
                             THEN 'items_above_limit' END;
        IF outcome IS NOT NULL THEN
            RETURN NEXT;
            RETURN;
        END IF;
        wanted := items.total;
    -- More than the event allows, or than it has (it could never be confirmed and would block the queue).
    ELSIF p_quantity > least(ev.max_per_booking, ev.total_tickets) THEN
        outcome := 'quantity_above_limit';
        RETURN NEXT;
        RETURN;
    END IF;
    changed_at := clock_timestamp();
    IF typed THEN
        item_types := items.codes;
        item_quantities := items.quantities;
        positions := items.positions;
        -- The walk with types would promote it as the newest entry (see above).
        waits := wanted > ev.available_tickets OR items.queued OR NOT items.fit
                 OR EXISTS (SELECT 1 FROM bookings w
                             WHERE w.event_id = p_event_id AND w.status = 'waiting' AND w.item_types IS NOT NULL
                               AND w.quantity > ev.available_tickets);
    ELSE
        -- All or nothing, and nobody overtakes a waiting entry, not even a smaller booking.
        waits := ev.waiting_count > 0 OR wanted > ev.available_tickets;
    END IF;
    booking_status := CASE WHEN waits THEN 'waiting' WHEN ev.hold_ttl_seconds IS NULL THEN 'confirmed' ELSE 'held' END;
    INSERT INTO bookings AS b (event_id, user_id, status, quantity, queue_ordinal, queue_tickets_before,
                               created_at, updated_at, hold_expires_at, item_types, item_quantities,
                               item_tickets_before)
    VALUES (p_event_id, p_user_id, booking_status, wanted,
            CASE WHEN waits THEN ev.queue_joined_entries + 1 END,
            CASE WHEN waits THEN ev.queue_joined_tickets END, changed_at, changed_at,
            CASE WHEN NOT waits THEN changed_at + make_interval(secs => ev.hold_ttl_seconds) END,
            item_types, item_quantities,
            CASE WHEN waits AND typed THEN (SELECT array_agg(t.queue_joined_tickets ORDER BY t.position)
                                              FROM ticket_types t
                                             WHERE t.event_id = p_event_id AND t.position = ANY (positions)) END)
    ON CONFLICT (event_id, user_id) WHERE status <> 'cancelled' DO NOTHING
    RETURNING b.id, b.created_at, b.updated_at, b.quantity, b.hold_expires_at
    INTO booking_id, booking_created_at, booking_updated_at, booking_quantity, booking_hold_expires_at;
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
                                item_types, item_quantities)
    VALUES (p_event_id, booking_id, p_user_id,
            CASE booking_status WHEN 'waiting' THEN 'waitlisted' WHEN 'held' THEN 'held' ELSE 'booked' END,
            p_request_id, booking_quantity, changed_at, item_types, item_quantities);
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
"""
BOOK_MANY = """
CREATE OR REPLACE FUNCTION book_many(p_event_id uuid, p_user_ids text[], p_request_ids text[], p_quantities integer[] DEFAULT NULL,
                                     p_item_counts integer[] DEFAULT NULL, p_item_types text[] DEFAULT NULL,
                                     p_item_quantities integer[] DEFAULT NULL)
RETURNS TABLE (outcome text, booking_id uuid, booking_status text, waiting_position integer,
               booking_created_at timestamptz, booking_updated_at timestamptz,
               booking_quantity integer, tickets_ahead bigint, booking_hold_expires_at timestamptz,
               item_types text[], item_quantities integer[], item_tickets_ahead bigint[])
LANGUAGE plpgsql AS $$
DECLARE
    first integer := 1;  -- booking i's first item in the flattened arrays
    items integer;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_user_ids, 1), 0) LOOP
        items := coalesce(p_item_counts[i], 0);
        IF items = 0 THEN
            RETURN QUERY SELECT * FROM book_ticket(p_event_id, p_user_ids[i], p_request_ids[i],
                                                   coalesce(p_quantities[i], 1));
        ELSE
            RETURN QUERY SELECT * FROM book_ticket(p_event_id, p_user_ids[i], p_request_ids[i], NULL,
                                                   p_item_types[first:first + items - 1],
                                                   p_item_quantities[first:first + items - 1]);
            first := first + items;
        END IF;
    END LOOP;
END
$$;
"""
CANCEL_BOOKING = """
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
               booking_item_tickets_ahead bigint[], promoted_items jsonb)
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
              b.payment_reference, b.item_types, b.item_quantities, b.item_tickets_before
    INTO booking_id, booking_created_at, booking_updated_at, booking_quantity, booking_offer_expires_at,
         booking_cancel_reason, booking_hold_expires_at, booking_payment_reference, booking_item_types,
         booking_item_quantities, kept_before;
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
    IF typed THEN  -- before the walk, which reads each type's room
        UPDATE ticket_types t
           SET taken_tickets = t.taken_tickets - CASE WHEN held.status = 'waiting' THEN 0 ELSE r.q END,
               waiting_tickets = t.waiting_tickets - CASE WHEN held.status = 'waiting' THEN r.q ELSE 0 END
          FROM unnest(released_types, released_quantities) AS r (code, q)
         WHERE t.event_id = p_event_id AND t.code = r.code;
    END IF;
    available := ev.available_tickets + CASE WHEN held.status = 'waiting' THEN 0 ELSE released END;
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
"""
UPDATE_EVENT = """
CREATE OR REPLACE FUNCTION update_event(p_event_id uuid, p_request_id text, p_name text, p_total_tickets integer,
                                        p_max_per_booking integer, p_sales_open boolean, p_promotion text,
                                        p_offer_ttl_seconds integer, p_hold_ttl_seconds integer DEFAULT NULL,
                                        p_ticket_types jsonb DEFAULT NULL)
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
    -- The requested types, each with the type of that code if it has one.
    SELECT count(*) FILTER (WHERE t.position IS NULL) AS added,
           count(*) FILTER (WHERE t.position IS NULL AND c.total_tickets IS NULL) AS without_total,
           bool_or(t.position IS NULL OR coalesce(c.name, t.name) IS DISTINCT FROM t.name
                   OR coalesce(c.total_tickets, t.total_tickets) <> t.total_tickets
                   OR coalesce(c.max_per_booking, t.max_per_booking) IS DISTINCT FROM t.max_per_booking) AS changes,
           max(c.total_tickets) AS lone_total, max(c.max_per_booking) AS lone_max_per_booking,
           bool_or(c.total_tickets < CASE WHEN ev.ticket_type_count = 1 THEN ev.total_tickets - ev.available_tickets
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
           SELECT 1 FROM bookings b WHERE b.event_id = p_event_id AND b.status = 'waiting' AND b.quantity > total) THEN
        outcome := 'capacity_below_waiting';
    END IF;
    IF outcome <> 'ok' OR (coalesce(p_name, ev.name) IS NOT DISTINCT FROM ev.name AND total = ev.total_tickets
                           AND booking_limit = ev.max_per_booking
                           AND coalesce(p_sales_open, ev.sales_open) = ev.sales_open
                           AND coalesce(p_promotion, ev.promotion) = ev.promotion
                           AND coalesce(p_offer_ttl_seconds, ev.offer_ttl_seconds) = ev.offer_ttl_seconds
                           AND hold_ttl IS NOT DISTINCT FROM ev.hold_ttl_seconds AND NOT coalesce(types.changes, false)) THEN
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
"""
ACCEPT_OFFER = """
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
"""
CONFIRM_HOLD = """
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
"""
PASS_ON_EXPIRED = """
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
"""
CANCEL_EVENT = """
CREATE OR REPLACE FUNCTION cancel_event(p_event_id uuid, p_request_id text)
RETURNS TABLE (outcome text, event_row events, cancelled_bookings integer)
LANGUAGE plpgsql AS $$
DECLARE
    -- Read once the lock is held, so that an event's changes are stamped in the order the lock served them.
    changed_at timestamptz;
BEGIN
    SELECT * INTO event_row FROM events e WHERE e.id = p_event_id FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'event_not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    outcome := 'ok';  -- with cancelled_bookings NULL: it was already cancelled, and nothing changes
    IF event_row.status = 'cancelled' THEN
        RETURN NEXT;
        RETURN;
    END IF;
    changed_at := clock_timestamp();
    -- The event row first, then the ledger: the webhook trigger snapshots the event at each entry.
    UPDATE events e
       SET status = 'cancelled', available_tickets = e.total_tickets, waiting_count = 0, waiting_tickets = 0,
           held_tickets = 0, updated_at = changed_at
     WHERE e.id = p_event_id
    RETURNING e.* INTO event_row;
    IF event_row.ticket_type_count > 1 THEN
        UPDATE ticket_types t SET taken_tickets = 0, waiting_tickets = 0 WHERE t.event_id = p_event_id;
    END IF;
    INSERT INTO booking_events (event_id, kind, request_id, created_at)
    VALUES (p_event_id, 'event_cancelled', p_request_id, changed_at);
    WITH cancelled AS (
        UPDATE bookings b SET status = 'cancelled', updated_at = changed_at
         WHERE b.event_id = p_event_id AND b.status <> 'cancelled'
        RETURNING b.id, b.user_id, b.quantity, b.seq, b.item_types, b.item_quantities)
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at,
                                item_types, item_quantities)
    SELECT p_event_id, c.id, c.user_id, 'cancelled', p_request_id, c.quantity, changed_at, c.item_types,
           c.item_quantities
      FROM cancelled c
     ORDER BY c.seq;
    GET DIAGNOSTICS cancelled_bookings = ROW_COUNT;
    RETURN NEXT;
END
$$;
"""
WAITING_PLACE = """
CREATE OR REPLACE FUNCTION waiting_place(p_event_id uuid, p_ordinal bigint, p_tickets_before bigint)
RETURNS TABLE (waiting_position integer, tickets_ahead bigint)
LANGUAGE sql STABLE AS $$
    SELECT (p_ordinal - e.queue_promoted_entries - coalesce(sum(d.entries), 0))::integer,
           p_tickets_before - e.queue_promoted_tickets - coalesce(sum(d.tickets), 0)::bigint
      FROM events e
      LEFT JOIN queue_departures d
        ON d.event_id = e.id AND d.ticket_type = 0 AND d.node = ANY (queue_prefix_nodes(p_ordinal - 1))
     WHERE e.id = p_event_id
     GROUP BY e.id
$$;
"""
ENQUEUE_WEBHOOK_MESSAGES = """
CREATE OR REPLACE FUNCTION enqueue_webhook_messages() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_messages (webhook_id, ledger_seq, event_id, booking_id, type, booking, event, occurred_at)
    SELECT w.id, NEW.seq, NEW.event_id, NEW.booking_id, m.type,
           to_jsonb(b) || jsonb_build_object(
               'waiting_position', CASE WHEN b.status = 'waiting' THEN e.waiting_count END,
               'tickets_ahead', CASE WHEN b.status = 'waiting'
                                     THEN coalesce(places.tickets_ahead, e.waiting_tickets - b.quantity) END,
               'items', (SELECT jsonb_agg(jsonb_build_object('ticket_type', i.code, 'quantity', i.quantity)
                                          || CASE WHEN b.status = 'waiting'
                                                  THEN jsonb_build_object('tickets_ahead', coalesce(
                                                           places.aheads[i.n], e.waiting_tickets - b.quantity))
                                                  ELSE '{}' END
                                          ORDER BY i.n)
                           FROM unnest(coalesce(b.item_types, ARRAY[first_type.code]),
                                       coalesce(b.item_quantities, ARRAY[b.quantity])) WITH ORDINALITY
                                AS i (code, quantity, n))),
           to_jsonb(e) || jsonb_build_object('ticket_types', event_ticket_types(e)), NEW.created_at
      FROM (SELECT CASE NEW.kind WHEN 'booked' THEN 'booking.confirmed'
                                 WHEN 'waitlisted' THEN 'booking.waitlisted'
                                 WHEN 'promoted' THEN 'booking.promoted'
                                 WHEN 'offered' THEN 'booking.offered'
                                 WHEN 'accepted' THEN 'booking.confirmed'
                                 WHEN 'cancelled' THEN 'booking.cancelled'
                                 WHEN 'declined' THEN 'booking.cancelled'
                                 WHEN 'expired' THEN 'booking.cancelled'
                                 WHEN 'held' THEN 'booking.held'
                                 WHEN 'paid' THEN 'booking.confirmed'
                                 WHEN 'hold_expired' THEN 'booking.cancelled'
                                 WHEN 'event_updated' THEN 'event.updated'
                                 WHEN 'event_cancelled' THEN 'event.cancelled' END AS type) m
      JOIN webhooks w ON w.disabled_at IS NULL
                     AND (w.event_id IS NULL OR w.event_id = NEW.event_id)
                     AND (w.types IS NULL OR m.type = ANY (w.types))
      JOIN events e ON e.id = NEW.event_id
      LEFT JOIN bookings b ON b.event_id = NEW.event_id AND b.id = NEW.booking_id
      LEFT JOIN ticket_types first_type ON first_type.event_id = NEW.event_id AND first_type.position = 1
      LEFT JOIN LATERAL (
            SELECT array_agg(t.waiting_tickets - i.quantity ORDER BY i.n) AS aheads,
                   sum(t.waiting_tickets - i.quantity)::bigint AS tickets_ahead
              FROM unnest(b.item_types, b.item_quantities) WITH ORDINALITY AS i (code, quantity, n)
              JOIN ticket_types t ON t.event_id = e.id AND t.code = i.code
           ) places ON b.status = 'waiting' AND b.item_types IS NOT NULL
     WHERE m.type IS NOT NULL;
    RETURN NULL;
END
$$
"""
PROMOTE_WAITING_BEFORE = """
CREATE OR REPLACE FUNCTION promote_waiting(
    p_event_id uuid, p_available integer, p_changed_at timestamptz, p_status text, p_expires_at timestamptz,
    OUT promoted_ids uuid[], OUT promoted_user_ids text[], OUT promoted_quantities integer[],
    OUT promoted_created_ats timestamptz[], OUT promoted_updated_ats timestamptz[], OUT promoted_tickets integer)
LANGUAGE plpgsql AS $$
DECLARE
    head record;
    promoted record;
BEGIN
    promoted_ids := '{}';
    promoted_user_ids := '{}';
    promoted_quantities := '{}';
    promoted_created_ats := '{}';
    promoted_updated_ats := '{}';
    promoted_tickets := 0;
    -- One walk along the queue, oldest first: the head is confirmed only if it fits, and the first that
    -- does not, stops. Finding each head afresh would step over the index entries of every entry
    -- promoted before it (they stay in the index until a vacuum): quadratic in a large raise.
    FOR head IN SELECT w.id, w.quantity FROM bookings w
                 WHERE w.event_id = p_event_id AND w.status = 'waiting'
                 ORDER BY w.seq LOOP
        EXIT WHEN head.quantity > p_available - promoted_tickets;
        UPDATE bookings b
           SET status = p_status, updated_at = p_changed_at,
               offer_expires_at = CASE WHEN p_status = 'offered' THEN p_expires_at END,
               hold_expires_at = CASE WHEN p_status = 'held' THEN p_expires_at END
         WHERE b.event_id = p_event_id AND b.id = head.id
        RETURNING b.id, b.user_id, b.quantity, b.created_at, b.updated_at INTO promoted;
        promoted_ids := promoted_ids || promoted.id;
        promoted_user_ids := promoted_user_ids || promoted.user_id;
        promoted_quantities := promoted_quantities || promoted.quantity;
        promoted_created_ats := promoted_created_ats || promoted.created_at;
        promoted_updated_ats := promoted_updated_ats || promoted.updated_at;
        promoted_tickets := promoted_tickets + promoted.quantity;
    END LOOP;
END
$$;
"""
BOOK_TICKET_BEFORE = """
CREATE OR REPLACE FUNCTION book_ticket(p_event_id uuid, p_user_id text, p_request_id text, p_quantity integer DEFAULT 1)
RETURNS TABLE (outcome text, booking_id uuid, booking_status text, waiting_position integer,
               booking_created_at timestamptz, booking_updated_at timestamptz,
               booking_quantity integer, tickets_ahead bigint, booking_hold_expires_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    ev events%ROWTYPE;
    waits boolean;
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
    IF p_quantity > least(ev.max_per_booking, ev.total_tickets) THEN
        outcome := 'quantity_above_limit';
        RETURN NEXT;
        RETURN;
    END IF;
    changed_at := clock_timestamp();
    -- All or nothing, and nobody overtakes a waiting entry, not even a smaller booking.
    waits := ev.waiting_count > 0 OR p_quantity > ev.available_tickets;
    booking_status := CASE WHEN waits THEN 'waiting' WHEN ev.hold_ttl_seconds IS NULL THEN 'confirmed' ELSE 'held' END;
    INSERT INTO bookings AS b (event_id, user_id, status, quantity, queue_ordinal, queue_tickets_before,
                               created_at, updated_at, hold_expires_at)
    VALUES (p_event_id, p_user_id, booking_status, p_quantity,
            CASE WHEN waits THEN ev.queue_joined_entries + 1 END,
            CASE WHEN waits THEN ev.queue_joined_tickets END, changed_at, changed_at,
            CASE WHEN NOT waits THEN changed_at + make_interval(secs => ev.hold_ttl_seconds) END)
    ON CONFLICT (event_id, user_id) WHERE status <> 'cancelled' DO NOTHING
    RETURNING b.id, b.created_at, b.updated_at, b.quantity, b.hold_expires_at
    INTO booking_id, booking_created_at, booking_updated_at, booking_quantity, booking_hold_expires_at;
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
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
    VALUES (p_event_id, booking_id, p_user_id,
            CASE booking_status WHEN 'waiting' THEN 'waitlisted' WHEN 'held' THEN 'held' ELSE 'booked' END,
            p_request_id, p_quantity, changed_at);
    -- New entries join at the back: everyone waiting is ahead.
    waiting_position := CASE WHEN waits THEN ev.waiting_count + 1 END;
    tickets_ahead := CASE WHEN waits THEN ev.waiting_tickets END;
    outcome := 'ok';
    RETURN NEXT;
END
$$;
"""
BOOK_MANY_BEFORE = """
CREATE OR REPLACE FUNCTION book_many(p_event_id uuid, p_user_ids text[], p_request_ids text[], p_quantities integer[] DEFAULT NULL)
RETURNS TABLE (outcome text, booking_id uuid, booking_status text, waiting_position integer,
               booking_created_at timestamptz, booking_updated_at timestamptz,
               booking_quantity integer, tickets_ahead bigint, booking_hold_expires_at timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_user_ids, 1), 0) LOOP
        RETURN QUERY SELECT * FROM book_ticket(p_event_id, p_user_ids[i], p_request_ids[i],
                                               coalesce(p_quantities[i], 1));
    END LOOP;
END
$$;
"""
CANCEL_BOOKING_BEFORE = """
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
               promoted_hold_expires_at timestamptz)
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
              b.payment_reference
    INTO booking_id, booking_created_at, booking_updated_at, booking_quantity, booking_offer_expires_at,
         booking_cancel_reason, booking_hold_expires_at, booking_payment_reference;
    IF held.status = 'waiting' THEN
        -- Left from the middle (or shrank): counted at its arrival rank, for the places behind it.
        INSERT INTO queue_departures AS d (event_id, node, entries, tickets)
        SELECT p_event_id, node, (booking_status = 'cancelled')::int, released
          FROM unnest(queue_cover_nodes(held.queue_ordinal, ev.queue_joined_entries)) AS node
        ON CONFLICT (event_id, node) DO UPDATE
           SET entries = d.entries + excluded.entries, tickets = d.tickets + excluded.tickets;
    END IF;
    available := ev.available_tickets + CASE WHEN held.status = 'waiting' THEN 0 ELSE released END;
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
"""
UPDATE_EVENT_BEFORE = """
CREATE OR REPLACE FUNCTION update_event(p_event_id uuid, p_request_id text, p_name text, p_total_tickets integer,
                                        p_max_per_booking integer, p_sales_open boolean, p_promotion text,
                                        p_offer_ttl_seconds integer, p_hold_ttl_seconds integer DEFAULT NULL)
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
    IF outcome = 'ok' AND total < ev.total_tickets - ev.available_tickets THEN
        outcome := 'capacity_below_booked';
    END IF;
    -- Quantities are at most 100 (a CHECK), so only a total below that can be too small for an entry.
    IF outcome = 'ok' AND total < 100 AND EXISTS (
           SELECT 1 FROM bookings b WHERE b.event_id = p_event_id AND b.status = 'waiting' AND b.quantity > total) THEN
        outcome := 'capacity_below_waiting';
    END IF;
    IF outcome <> 'ok' OR (coalesce(p_name, ev.name) IS NOT DISTINCT FROM ev.name AND total = ev.total_tickets
                           AND coalesce(p_max_per_booking, ev.max_per_booking) = ev.max_per_booking
                           AND coalesce(p_sales_open, ev.sales_open) = ev.sales_open
                           AND coalesce(p_promotion, ev.promotion) = ev.promotion
                           AND coalesce(p_offer_ttl_seconds, ev.offer_ttl_seconds) = ev.offer_ttl_seconds
                           AND hold_ttl IS NOT DISTINCT FROM ev.hold_ttl_seconds) THEN
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
"""
ACCEPT_OFFER_BEFORE = """
CREATE OR REPLACE FUNCTION accept_offer(p_event_id uuid, p_user_id text, p_request_id text)
RETURNS TABLE (outcome text, booking_id uuid, booking_status text, booking_created_at timestamptz,
               booking_updated_at timestamptz, booking_quantity integer, booking_offer_expires_at timestamptz,
               booking_hold_expires_at timestamptz, booking_payment_reference text)
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
              b.payment_reference
    INTO booking_id, booking_status, booking_created_at, booking_updated_at, booking_quantity,
         booking_offer_expires_at, booking_hold_expires_at, booking_payment_reference;
    UPDATE events
       SET held_tickets = held_tickets + CASE WHEN booking_status = 'held' THEN held.quantity ELSE 0 END,
           updated_at = changed_at
     WHERE id = p_event_id;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
    VALUES (p_event_id, held.id, p_user_id, CASE booking_status WHEN 'held' THEN 'held' ELSE 'accepted' END,
            p_request_id, held.quantity, changed_at);
    RETURN NEXT;
END
$$;
"""
CONFIRM_HOLD_BEFORE = """
CREATE OR REPLACE FUNCTION confirm_hold(p_event_id uuid, p_user_id text, p_request_id text, p_payment_reference text)
RETURNS TABLE (outcome text, booking_id uuid, booking_status text, booking_created_at timestamptz,
               booking_updated_at timestamptz, booking_quantity integer, booking_offer_expires_at timestamptz,
               booking_hold_expires_at timestamptz, booking_payment_reference text, repeated boolean)
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
        INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
        VALUES (p_event_id, held.id, p_user_id, 'paid', p_request_id, held.quantity, changed_at);
    END IF;
    IF outcome IN ('ok', 'repeat') THEN
        repeated := outcome = 'repeat';
        outcome := 'ok';
        SELECT held.id, held.status, held.created_at, held.updated_at, held.quantity, held.offer_expires_at,
               held.hold_expires_at, held.payment_reference
          INTO booking_id, booking_status, booking_created_at, booking_updated_at, booking_quantity,
               booking_offer_expires_at, booking_hold_expires_at, booking_payment_reference;
    END IF;
    RETURN NEXT;
END
$$;
"""
PASS_ON_EXPIRED_BEFORE = """
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
BEGIN
    SELECT * INTO promoted_status, deadline
      FROM promotion_terms(p_event.promotion, p_event.offer_ttl_seconds, p_event.hold_ttl_seconds, p_changed_at);
    SELECT * INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats,
                  promoted_updated_ats, promoted_tickets
      FROM promote_waiting(p_event.id, p_event.available_tickets + released, p_changed_at, promoted_status, deadline);
    -- The event row first, then the ledger: the webhook trigger snapshots the event at each entry.
    UPDATE events e
       SET available_tickets = e.available_tickets + released - promoted_tickets,
           waiting_count = e.waiting_count - cardinality(promoted_ids),
           waiting_tickets = e.waiting_tickets - promoted_tickets,
           queue_promoted_entries = e.queue_promoted_entries + cardinality(promoted_ids),
           queue_promoted_tickets = e.queue_promoted_tickets + promoted_tickets,
           held_tickets = e.held_tickets - CASE WHEN p_kind = 'hold_expired' THEN released ELSE 0 END
                          + CASE WHEN promoted_status = 'held' THEN promoted_tickets ELSE 0 END,
           updated_at = p_changed_at
     WHERE e.id = p_event.id;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
    SELECT p_event.id, x.id, x.user_id, p_kind, p_request_id, x.quantity, p_changed_at
      FROM unnest(p_ids, p_user_ids, p_quantities) WITH ORDINALITY AS x (id, user_id, quantity, step)
     ORDER BY x.step;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
    SELECT p_event.id, p.id, p.user_id, CASE promoted_status WHEN 'confirmed' THEN 'promoted' ELSE promoted_status END,
           p_request_id, p.quantity, p_changed_at
      FROM unnest(promoted_ids, promoted_user_ids, promoted_quantities) WITH ORDINALITY AS p (id, user_id, quantity, step)
     ORDER BY p.step;
    promoted_bookings := cardinality(promoted_ids);
END
$$;
"""
CANCEL_EVENT_BEFORE = """
CREATE OR REPLACE FUNCTION cancel_event(p_event_id uuid, p_request_id text)
RETURNS TABLE (outcome text, event_row events, cancelled_bookings integer)
LANGUAGE plpgsql AS $$
DECLARE
    -- Read once the lock is held, so that an event's changes are stamped in the order the lock served them.
    changed_at timestamptz;
BEGIN
    SELECT * INTO event_row FROM events e WHERE e.id = p_event_id FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'event_not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    outcome := 'ok';  -- with cancelled_bookings NULL: it was already cancelled, and nothing changes
    IF event_row.status = 'cancelled' THEN
        RETURN NEXT;
        RETURN;
    END IF;
    changed_at := clock_timestamp();
    -- The event row first, then the ledger: the webhook trigger snapshots the event at each entry.
    UPDATE events e
       SET status = 'cancelled', available_tickets = e.total_tickets, waiting_count = 0, waiting_tickets = 0,
           held_tickets = 0, updated_at = changed_at
     WHERE e.id = p_event_id
    RETURNING e.* INTO event_row;
    INSERT INTO booking_events (event_id, kind, request_id, created_at)
    VALUES (p_event_id, 'event_cancelled', p_request_id, changed_at);
    WITH cancelled AS (
        UPDATE bookings b SET status = 'cancelled', updated_at = changed_at
         WHERE b.event_id = p_event_id AND b.status <> 'cancelled'
        RETURNING b.id, b.user_id, b.quantity, b.seq)
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
    SELECT p_event_id, c.id, c.user_id, 'cancelled', p_request_id, c.quantity, changed_at
      FROM cancelled c
     ORDER BY c.seq;
    GET DIAGNOSTICS cancelled_bookings = ROW_COUNT;
    RETURN NEXT;
END
$$;
"""
WAITING_PLACE_BEFORE = """
CREATE OR REPLACE FUNCTION waiting_place(p_event_id uuid, p_ordinal bigint, p_tickets_before bigint)
RETURNS TABLE (waiting_position integer, tickets_ahead bigint)
LANGUAGE sql STABLE AS $$
    SELECT (p_ordinal - e.queue_promoted_entries - coalesce(sum(d.entries), 0))::integer,
           p_tickets_before - e.queue_promoted_tickets - coalesce(sum(d.tickets), 0)::bigint
      FROM events e
      LEFT JOIN queue_departures d
        ON d.event_id = e.id AND d.node = ANY (queue_prefix_nodes(p_ordinal - 1))
     WHERE e.id = p_event_id
     GROUP BY e.id
$$;
"""
ENQUEUE_WEBHOOK_MESSAGES_BEFORE = """
CREATE OR REPLACE FUNCTION enqueue_webhook_messages() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_messages (webhook_id, ledger_seq, event_id, booking_id, type, booking, event, occurred_at)
    SELECT w.id, NEW.seq, NEW.event_id, NEW.booking_id, m.type,
           to_jsonb(b) || jsonb_build_object(
               'waiting_position', CASE WHEN b.status = 'waiting' THEN e.waiting_count END,
               'tickets_ahead', CASE WHEN b.status = 'waiting' THEN e.waiting_tickets - b.quantity END),
           to_jsonb(e), NEW.created_at
      FROM (SELECT CASE NEW.kind WHEN 'booked' THEN 'booking.confirmed'
                                 WHEN 'waitlisted' THEN 'booking.waitlisted'
                                 WHEN 'promoted' THEN 'booking.promoted'
                                 WHEN 'offered' THEN 'booking.offered'
                                 WHEN 'accepted' THEN 'booking.confirmed'
                                 WHEN 'cancelled' THEN 'booking.cancelled'
                                 WHEN 'declined' THEN 'booking.cancelled'
                                 WHEN 'expired' THEN 'booking.cancelled'
                                 WHEN 'held' THEN 'booking.held'
                                 WHEN 'paid' THEN 'booking.confirmed'
                                 WHEN 'hold_expired' THEN 'booking.cancelled'
                                 WHEN 'event_updated' THEN 'event.updated'
                                 WHEN 'event_cancelled' THEN 'event.cancelled' END AS type) m
      JOIN webhooks w ON w.disabled_at IS NULL
                     AND (w.event_id IS NULL OR w.event_id = NEW.event_id)
                     AND (w.types IS NULL OR m.type = ANY (w.types))
      JOIN events e ON e.id = NEW.event_id
      LEFT JOIN bookings b ON b.event_id = NEW.event_id AND b.id = NEW.booking_id
     WHERE m.type IS NOT NULL;
    RETURN NULL;
END
$$
"""
TRIGGER = """
CREATE TRIGGER events_standard_ticket_type AFTER INSERT ON events
FOR EACH ROW EXECUTE FUNCTION add_standard_ticket_type()
"""
BACKFILL = """
INSERT INTO ticket_types (event_id, position, code, total_tickets)
SELECT e.id, 1, 'standard', e.total_tickets FROM events e
"""
# With several types, an entry may wait while the event has room: its type has none.
WAITING_ONLY_WHEN_SHORT_BEFORE = "waiting_count = 0 OR available_tickets < waiting_tickets"
WAITING_ONLY_WHEN_SHORT = "waiting_count = 0 OR available_tickets < waiting_tickets OR ticket_type_count > 1"
TYPED_EVENTS = "SELECT count(*) FROM ticket_types WHERE position > 1 OR code <> 'standard'"

BOOKING_KINDS = ("booked", "waitlisted", "cancelled", "reduced", "promoted")
ORGANISER_KINDS = ("capacity_changed", "sales_closed", "sales_opened", "event_cancelled", "event_updated")
OFFER_KINDS = ("offered", "accepted", "declined", "expired")
HOLD_KINDS = ("held", "paid", "hold_expired")
TYPE_KINDS = ("type_added", "type_changed")
SUBJECT_KNOWN_BEFORE = (
    "CASE WHEN kind IN ('capacity_changed', 'sales_closed', 'sales_opened', 'event_cancelled', 'event_updated') "
    "THEN booking_id IS NULL AND user_id IS NULL AND quantity IS NULL "
    "ELSE booking_id IS NOT NULL AND user_id IS NOT NULL AND quantity IS NOT NULL END"
)
SUBJECT_KNOWN = (
    "CASE WHEN kind IN ('capacity_changed', 'sales_closed', 'sales_opened', 'event_cancelled', 'event_updated', "
    "'type_added', 'type_changed') "
    "THEN booking_id IS NULL AND user_id IS NULL AND quantity IS NULL "
    "ELSE booking_id IS NOT NULL AND user_id IS NOT NULL AND quantity IS NOT NULL END"
)
TOTALS_BEFORE = (
    "(kind = 'capacity_changed') = (total_tickets_from IS NOT NULL) "
    "AND (total_tickets_from IS NULL) = (total_tickets_to IS NULL)"
)
TOTALS = (
    "(kind IN ('capacity_changed', 'type_added', 'type_changed')) = (total_tickets_from IS NOT NULL) "
    "AND (total_tickets_from IS NULL) = (total_tickets_to IS NULL)"
)
# The items of a booking, or of what a ledger entry moved: one code per quantity, 1..20 of them.
ITEMS = (
    "(item_types IS NULL) = (item_quantities IS NULL) "
    "AND cardinality(item_types) BETWEEN 1 AND 20 AND cardinality(item_quantities) = cardinality(item_types)"
)
TYPE_CHECKS = {
    ("events", "ticket_type_count_range"): "ticket_type_count BETWEEN 1 AND 20",
    ("bookings", "items_match"): ITEMS,
    ("bookings", "item_places_match"): "cardinality(item_tickets_before) = cardinality(item_types)",
    ("queue_departures", "ticket_type_range"): "ticket_type BETWEEN 0 AND 20",
    ("booking_events", "items_match"): ITEMS,
    ("booking_events", "type_change_names_it"): "(kind IN ('type_added', 'type_changed')) = (ticket_type IS NOT NULL)",
}
# Replaced in both directions: their arguments or result columns change.
SIGNATURES_BEFORE = (
    "promote_waiting(uuid, integer, timestamptz, text, timestamptz)",
    "book_ticket(uuid, text, text, integer)",
    "book_many(uuid, text[], text[], integer[])",
    "cancel_booking(uuid, text, text, integer, boolean)",
    "update_event(uuid, text, text, integer, integer, boolean, text, integer, integer)",
    "accept_offer(uuid, text, text)",
    "confirm_hold(uuid, text, text, text)",
)
SIGNATURES = (
    "promote_waiting(uuid, integer, timestamptz, text, timestamptz, boolean)",
    "book_ticket(uuid, text, text, integer, text[], integer[])",
    "book_many(uuid, text[], text[], integer[], integer[], text[], integer[])",
    "cancel_booking(uuid, text, text, integer, boolean, text[], integer[])",
    "update_event(uuid, text, text, integer, integer, boolean, text, integer, integer, jsonb)",
    "accept_offer(uuid, text, text)",
    "confirm_hold(uuid, text, text, text)",
)
# Added by this revision, dropped by its downgrade.
NEW_SIGNATURES = (
    "add_standard_ticket_type()",
    "event_ticket_types(events)",
    "waiting_item_places(uuid, bigint, text[], bigint[])",
    "promote_waiting_types(uuid, integer, timestamptz, text, timestamptz)",
)


def _kinds(kinds) -> str:
    return "kind IN (" + ", ".join(f"'{kind}'" for kind in kinds) + ")"


def upgrade() -> None:
    op.create_table(
        "ticket_types",
        sa.Column("event_id", sa.Uuid, sa.ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.SmallInteger, nullable=False),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("total_tickets", sa.Integer, nullable=False),
        sa.Column("max_per_booking", sa.Integer),
        sa.Column("taken_tickets", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("waiting_tickets", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("queue_joined_tickets", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint("event_id", "position", name=op.f("pk_ticket_types")),
        sa.UniqueConstraint("event_id", "code", name=op.f("uq_ticket_types_event_id_code")),
        sa.CheckConstraint("position BETWEEN 1 AND 20", name=op.f("ck_ticket_types_position_range")),
        sa.CheckConstraint("code ~ '^[a-z0-9][a-z0-9-]{0,31}$'", name=op.f("ck_ticket_types_code_format")),
        sa.CheckConstraint("char_length(name) BETWEEN 1 AND 200", name=op.f("ck_ticket_types_name_length")),
        sa.CheckConstraint(
            "taken_tickets BETWEEN 0 AND total_tickets AND total_tickets <= 1000000",
            name=op.f("ck_ticket_types_taken_tickets_range"),
        ),
        sa.CheckConstraint("max_per_booking BETWEEN 1 AND 100", name=op.f("ck_ticket_types_max_per_booking_range")),
        sa.CheckConstraint(
            "waiting_tickets >= 0 AND queue_joined_tickets >= waiting_tickets",
            name=op.f("ck_ticket_types_queue_counts_range"),
        ),
    )
    op.execute(BACKFILL)
    op.add_column(
        "events", sa.Column("ticket_type_count", sa.SmallInteger, server_default=sa.text("1"), nullable=False)
    )
    _replace_check("events", "waiting_only_when_short", WAITING_ONLY_WHEN_SHORT)
    op.add_column("bookings", sa.Column("item_types", ARRAY(sa.Text)))
    op.add_column("bookings", sa.Column("item_quantities", ARRAY(sa.Integer)))
    op.add_column("bookings", sa.Column("item_tickets_before", ARRAY(sa.BigInteger)))
    op.create_index(
        op.f("ix_bookings_waiting_items"),
        "bookings",
        ["event_id", "quantity"],
        postgresql_where=sa.text("status = 'waiting' AND item_types IS NOT NULL"),
    )
    op.add_column(
        "queue_departures", sa.Column("ticket_type", sa.SmallInteger, server_default=sa.text("0"), nullable=False)
    )
    op.drop_constraint(op.f("pk_queue_departures"), "queue_departures", type_="primary")
    op.create_primary_key(op.f("pk_queue_departures"), "queue_departures", ["event_id", "ticket_type", "node"])
    op.add_column("booking_events", sa.Column("item_types", ARRAY(sa.Text)))
    op.add_column("booking_events", sa.Column("item_quantities", ARRAY(sa.Integer)))
    op.add_column("booking_events", sa.Column("ticket_type", sa.Text))
    _replace_check(
        "booking_events", "kind_known", _kinds(BOOKING_KINDS + ORGANISER_KINDS + OFFER_KINDS + HOLD_KINDS + TYPE_KINDS)
    )
    _replace_check("booking_events", "subject_known", SUBJECT_KNOWN)
    _replace_check("booking_events", "totals_with_capacity_change", TOTALS)
    for (table, name), condition in TYPE_CHECKS.items():
        op.create_check_constraint(op.f(f"ck_{table}_{name}"), table, condition)
    drop(*SIGNATURES_BEFORE)
    create_or_replace(
        ADD_STANDARD_TICKET_TYPE,
        EVENT_TICKET_TYPES,
        WAITING_ITEM_PLACES,
        PROMOTE_WAITING_TYPES,
        PROMOTE_WAITING,
        BOOK_TICKET,
        BOOK_MANY,
        CANCEL_BOOKING,
        UPDATE_EVENT,
        ACCEPT_OFFER,
        CONFIRM_HOLD,
        PASS_ON_EXPIRED,
        CANCEL_EVENT,
        WAITING_PLACE,
        ENQUEUE_WEBHOOK_MESSAGES,
    )
    op.execute(TRIGGER)


def downgrade() -> None:
    typed = op.get_bind().execute(sa.text(TYPED_EVENTS)).scalar_one()
    if typed:
        raise RuntimeError(
            f"cannot downgrade below 0019: {typed} ticket types are not an event's one `standard` type, "
            "which the schema before it cannot represent; nothing was changed."
        )
    op.execute("DROP TRIGGER events_standard_ticket_type ON events")
    drop(*SIGNATURES, *NEW_SIGNATURES)
    create_or_replace(
        PROMOTE_WAITING_BEFORE,
        BOOK_TICKET_BEFORE,
        BOOK_MANY_BEFORE,
        CANCEL_BOOKING_BEFORE,
        UPDATE_EVENT_BEFORE,
        ACCEPT_OFFER_BEFORE,
        CONFIRM_HOLD_BEFORE,
        PASS_ON_EXPIRED_BEFORE,
        CANCEL_EVENT_BEFORE,
        WAITING_PLACE_BEFORE,
        ENQUEUE_WEBHOOK_MESSAGES_BEFORE,
    )
    for table, name in TYPE_CHECKS:
        op.drop_constraint(op.f(f"ck_{table}_{name}"), table, type_="check")
    _replace_check("booking_events", "totals_with_capacity_change", TOTALS_BEFORE)
    _replace_check("booking_events", "subject_known", SUBJECT_KNOWN_BEFORE)
    _replace_check("booking_events", "kind_known", _kinds(BOOKING_KINDS + ORGANISER_KINDS + OFFER_KINDS + HOLD_KINDS))
    op.drop_column("booking_events", "ticket_type")
    op.drop_column("booking_events", "item_quantities")
    op.drop_column("booking_events", "item_types")
    # Only the event-wide trees can be left (one type per event): the key loses ticket_type.
    op.drop_constraint(op.f("pk_queue_departures"), "queue_departures", type_="primary")
    op.drop_column("queue_departures", "ticket_type")
    op.create_primary_key(op.f("pk_queue_departures"), "queue_departures", ["event_id", "node"])
    op.drop_index(op.f("ix_bookings_waiting_items"), "bookings")
    op.drop_column("bookings", "item_tickets_before")
    op.drop_column("bookings", "item_quantities")
    op.drop_column("bookings", "item_types")
    _replace_check("events", "waiting_only_when_short", WAITING_ONLY_WHEN_SHORT_BEFORE)
    op.drop_column("events", "ticket_type_count")
    op.drop_table("ticket_types")


def _replace_check(table: str, name: str, condition: str) -> None:
    op.drop_constraint(op.f(f"ck_{table}_{name}"), table, type_="check")
    op.create_check_constraint(op.f(f"ck_{table}_{name}"), table, condition)
