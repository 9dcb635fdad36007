"""A fair sale opening: the lobby, drawn at random when the sale opens (issue 27).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-08

Contract v3, "Fair sale opening":
- events gain `sales_open_at` (NULL: no lobby), `lobby_count` (entries in the lobby now), and the draw's
  state, kept under the event lock: `draw_started_at` (the ranks are fixed), `draw_entries` (how many were
  ranked at random: the entries that joined before sales_open_at), `lobby_ranked` (ranks given: those, then
  late arrivals one by one), `lobby_seated` (the draw's cursor: ranks booked or passed over) and `drawn_at`
  (the draw done). A partial index finds the events whose draw is due.
- bookings gain the status `lobby` and `lobby_rank` (set when the draw books the entry). No index of its
  own for the lobby: the ranking reads the event's bookings once, along ix_bookings_event_id_seq, and a
  partial index on status = 'lobby' led the planner, on a lobby just filled, to look a drawn entry's user up
  along it (a scan of the whole lobby per entry). lobby_ranks holds each rank given: (event, rank) -> booking.
- The ledger gains `lobby_rank` (on the entry that books a drawn entry) and the kinds `lobby` (a booking
  joins the lobby) and `lobby_drawn` (the draw done: the webhook event.sales_opened).
- book_ticket sends a booking to the lobby before the draw (join_lobby, with its items) and books a drawn
  entry in place (an extra argument, the rank: its signature changes, dropped first in both directions);
  cancel_booking lets an entry leave the lobby and returns the booking's lobby_rank (a result column more:
  dropped first too); update_event moves the opening (an
  extra argument); cancel_event empties the lobby; draw_lobby, rank_lobby and seat_lobby are the draw; the
  webhook trigger maps lobby_drawn.

Downgrade refuses while the ledger holds a lobby entry: every lobby entry wrote one, so without any, no
booking is or was in a lobby and the new columns carry nothing but their defaults.

It follows the ticket types (0019): a lobby entry stores its items as any booking of an event of several
types does (NULL arrays on an event of one type), join_lobby takes them, and the draw passes them to
book_ticket; its frozen copies are the files as merged with 0019's, and the *_BEFORE copies 0019's.
"""

import sqlalchemy as sa
from alembic import op

from app.database.functions import create_or_replace, drop

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

# The definitions this revision installs, frozen (app/database/functions.py); each is its
# app/<package>/sql/<function>.sql file as of this revision, and *_BEFORE as of 0019.
JOIN_LOBBY = """
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
"""

BOOK_TICKET = """
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
"""

UPDATE_EVENT = """
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
           held_tickets = 0, lobby_count = 0, updated_at = changed_at
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

RANK_LOBBY = """
CREATE OR REPLACE FUNCTION rank_lobby(ev events, p_changed_at timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    ranked integer;
BEGIN
    INSERT INTO lobby_ranks (event_id, rank, booking_id)
    SELECT ev.id, row_number() OVER (ORDER BY b.created_at >= ev.sales_open_at,
                                              CASE WHEN b.created_at < ev.sales_open_at THEN gen_random_uuid() END,
                                              b.seq), b.id
      FROM bookings b
     WHERE b.event_id = ev.id AND b.status = 'lobby';
    GET DIAGNOSTICS ranked = ROW_COUNT;
    UPDATE events e
       SET draw_started_at = p_changed_at, lobby_ranked = ranked,
           draw_entries = (SELECT count(*) FROM bookings b
                            WHERE b.event_id = ev.id AND b.status = 'lobby' AND b.created_at < ev.sales_open_at)
     WHERE e.id = ev.id;
    RETURN ranked;
END
$$;
"""

SEAT_LOBBY = """
CREATE OR REPLACE FUNCTION seat_lobby(ev events, p_request_id text, p_slice integer,
                                      OUT seated integer, OUT finished boolean)
LANGUAGE plpgsql AS $$
DECLARE
    entry record;
    cursor_to integer := least(ev.lobby_seated + p_slice, ev.lobby_ranked);
    changed_at timestamptz;
BEGIN
    seated := 0;
    FOR entry IN SELECT r.rank, b.user_id, b.quantity, b.item_types, b.item_quantities
                   FROM lobby_ranks r
                   JOIN bookings b ON b.event_id = r.event_id AND b.id = r.booking_id
                  WHERE r.event_id = ev.id AND r.rank > ev.lobby_seated AND r.rank <= cursor_to
                    AND b.status = 'lobby'
                  ORDER BY r.rank LOOP
        PERFORM book_ticket(ev.id, entry.user_id, p_request_id, entry.quantity, entry.item_types,
                            entry.item_quantities, entry.rank::integer);
        seated := seated + 1;
    END LOOP;
    finished := cursor_to = ev.lobby_ranked;
    changed_at := clock_timestamp();
    -- The event row first, then the ledger: the webhook trigger snapshots the event at each entry.
    UPDATE events e
       SET lobby_seated = cursor_to, drawn_at = CASE WHEN finished THEN changed_at END,
           updated_at = CASE WHEN finished THEN changed_at ELSE e.updated_at END
     WHERE e.id = ev.id;
    IF finished THEN
        INSERT INTO booking_events (event_id, kind, request_id, created_at)
        VALUES (ev.id, 'lobby_drawn', p_request_id, changed_at);
    END IF;
END
$$;
"""

DRAW_LOBBY = """
CREATE OR REPLACE FUNCTION draw_lobby(p_event_id uuid, p_request_id text, p_slice integer)
RETURNS TABLE (outcome text, ranked integer, seated integer, finished boolean)
LANGUAGE plpgsql
SET lock_timeout = '2s'
AS $$
DECLARE
    ev events%ROWTYPE;
    changed_at timestamptz;
BEGIN
    ranked := 0;
    seated := 0;
    BEGIN
        SELECT * INTO ev FROM events e WHERE e.id = p_event_id FOR UPDATE;
    EXCEPTION WHEN lock_not_available THEN
        outcome := 'busy';
        finished := false;
        RETURN NEXT;
        RETURN;
    END;
    IF NOT FOUND THEN
        outcome := 'event_not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    changed_at := clock_timestamp();
    finished := ev.drawn_at IS NOT NULL;
    IF finished OR ev.sales_open_at IS NULL OR ev.sales_open_at > changed_at OR ev.status <> 'active'
       OR NOT ev.sales_open THEN
        outcome := 'not_due';
        RETURN NEXT;
        RETURN;
    END IF;
    outcome := 'ok';
    IF ev.draw_started_at IS NULL THEN
        ranked := rank_lobby(ev, changed_at);
    ELSE
        SELECT * INTO seated, finished FROM seat_lobby(ev, p_request_id, p_slice);
    END IF;
    RETURN NEXT;
END
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
                                 WHEN 'event_cancelled' THEN 'event.cancelled'
                                 WHEN 'lobby_drawn' THEN 'event.sales_opened' END AS type) m
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

BOOK_TICKET_BEFORE = """
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

CANCEL_BOOKING_BEFORE = """
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

UPDATE_EVENT_BEFORE = """
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

ENQUEUE_WEBHOOK_MESSAGES_BEFORE = """
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

LOBBY_ENTRIES = "SELECT count(*) FROM booking_events WHERE kind IN ('lobby', 'lobby_drawn')"
NEW_FUNCTIONS = (
    "join_lobby(events, text, text, integer, text[], integer[], timestamptz)",
    "rank_lobby(events, timestamptz)",
    "seat_lobby(events, text, integer)",
    "draw_lobby(uuid, text, integer)",
)
# Replaced in both directions: their arguments (or cancel_booking's result columns) change.
SIGNATURES_BEFORE = (
    "book_ticket(uuid, text, text, integer, text[], integer[])",
    "cancel_booking(uuid, text, text, integer, boolean, text[], integer[])",
    "update_event(uuid, text, text, integer, integer, boolean, text, integer, integer, jsonb)",
)
SIGNATURES = (
    "book_ticket(uuid, text, text, integer, text[], integer[], integer)",
    "cancel_booking(uuid, text, text, integer, boolean, text[], integer[])",
    "update_event(uuid, text, text, integer, integer, boolean, text, integer, integer, jsonb, timestamptz)",
)
BOOKING_STATUSES_BEFORE = "status IN ('confirmed', 'waiting', 'offered', 'held', 'cancelled')"
BOOKING_STATUSES = "status IN ('confirmed', 'waiting', 'offered', 'held', 'cancelled', 'lobby')"
KINDS_BEFORE = (
    "booked",
    "waitlisted",
    "cancelled",
    "reduced",
    "promoted",
    "capacity_changed",
    "sales_closed",
    "sales_opened",
    "event_cancelled",
    "event_updated",
    "offered",
    "accepted",
    "declined",
    "expired",
    "held",
    "paid",
    "hold_expired",
    "type_added",
    "type_changed",
)
KINDS = KINDS_BEFORE + ("lobby", "lobby_drawn")
EVENT_KINDS_BEFORE = (
    "capacity_changed",
    "sales_closed",
    "sales_opened",
    "event_cancelled",
    "event_updated",
    "type_added",
    "type_changed",
)
EVENT_KINDS = EVENT_KINDS_BEFORE + ("lobby_drawn",)
SUBJECT = (
    "CASE WHEN {} "
    "THEN booking_id IS NULL AND user_id IS NULL AND quantity IS NULL "
    "ELSE booking_id IS NOT NULL AND user_id IS NOT NULL AND quantity IS NOT NULL END"
)
LOBBY_CHECKS = {
    ("events", "lobby_counts_range"): "lobby_count >= 0 AND lobby_seated BETWEEN 0 AND lobby_ranked",
    ("booking_events", "lobby_rank_range"): "lobby_rank >= 1",
    ("bookings", "lobby_rank_range"): "lobby_rank >= 1",
}


def _kinds(kinds) -> str:
    return "kind IN (" + ", ".join(f"'{kind}'" for kind in kinds) + ")"


def upgrade() -> None:
    op.add_column("events", sa.Column("sales_open_at", sa.DateTime(timezone=True)))
    for column in ("lobby_count", "lobby_ranked", "lobby_seated"):
        op.add_column("events", sa.Column(column, sa.Integer, server_default=sa.text("0"), nullable=False))
    op.add_column("events", sa.Column("draw_started_at", sa.DateTime(timezone=True)))
    op.add_column("events", sa.Column("draw_entries", sa.Integer))
    op.add_column("events", sa.Column("drawn_at", sa.DateTime(timezone=True)))
    op.add_column("bookings", sa.Column("lobby_rank", sa.Integer))
    op.add_column("booking_events", sa.Column("lobby_rank", sa.Integer))
    op.create_table(
        "lobby_ranks",
        sa.Column("event_id", sa.Uuid, sa.ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("booking_id", sa.Uuid, nullable=False),
        sa.PrimaryKeyConstraint("event_id", "rank", name=op.f("pk_lobby_ranks")),
        sa.CheckConstraint("rank >= 1", name=op.f("ck_lobby_ranks_rank_range")),
    )
    for (table, name), condition in LOBBY_CHECKS.items():
        op.create_check_constraint(op.f(f"ck_{table}_{name}"), table, condition)
    _replace_check("bookings", "status_known", BOOKING_STATUSES)
    _replace_check("booking_events", "kind_known", _kinds(KINDS))
    _replace_check("booking_events", "subject_known", SUBJECT.format(_kinds(EVENT_KINDS)))
    op.create_index(
        op.f("ix_events_sales_open_at"),
        "events",
        ["sales_open_at"],
        postgresql_where=sa.text("sales_open_at IS NOT NULL AND drawn_at IS NULL"),
    )
    drop(*SIGNATURES_BEFORE)
    create_or_replace(
        JOIN_LOBBY,
        BOOK_TICKET,
        CANCEL_BOOKING,
        UPDATE_EVENT,
        CANCEL_EVENT,
        RANK_LOBBY,
        SEAT_LOBBY,
        DRAW_LOBBY,
        ENQUEUE_WEBHOOK_MESSAGES,
    )


def downgrade() -> None:
    entries = op.get_bind().execute(sa.text(LOBBY_ENTRIES)).scalar_one()
    if entries:
        raise RuntimeError(
            f"cannot downgrade below 0020: the ledger holds {entries} lobby entries (lobby, lobby_drawn), "
            "which the schema before it cannot represent; nothing was changed."
        )
    drop(*SIGNATURES, *NEW_FUNCTIONS)
    create_or_replace(
        BOOK_TICKET_BEFORE,
        CANCEL_BOOKING_BEFORE,
        UPDATE_EVENT_BEFORE,
        CANCEL_EVENT_BEFORE,
        ENQUEUE_WEBHOOK_MESSAGES_BEFORE,
    )
    op.drop_index(op.f("ix_events_sales_open_at"), "events")
    _replace_check("booking_events", "subject_known", SUBJECT.format(_kinds(EVENT_KINDS_BEFORE)))
    _replace_check("booking_events", "kind_known", _kinds(KINDS_BEFORE))
    _replace_check("bookings", "status_known", BOOKING_STATUSES_BEFORE)
    for table, name in LOBBY_CHECKS:
        op.drop_constraint(op.f(f"ck_{table}_{name}"), table, type_="check")
    op.drop_table("lobby_ranks")
    op.drop_column("booking_events", "lobby_rank")
    op.drop_column("bookings", "lobby_rank")
    for column in ("drawn_at", "draw_entries", "draw_started_at", "lobby_seated", "lobby_ranked", "lobby_count"):
        op.drop_column("events", column)
    op.drop_column("events", "sales_open_at")


def _replace_check(table: str, name: str, condition: str) -> None:
    op.drop_constraint(op.f(f"ck_{table}_{name}"), table, type_="check")
    op.create_check_constraint(op.f(f"ck_{table}_{name}"), table, condition)
