"""A fair sale opening: the lobby, drawn at random when the sale opens (issue 27).

Revision ID: 0020
Revises: 0018
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
- book_ticket sends a booking to the lobby before the draw (join_lobby) and books a drawn entry in place
  (an extra argument, the rank: its signature changes, dropped first in both directions); cancel_booking
  lets an entry leave the lobby and returns the booking's lobby_rank; update_event moves the opening (an
  extra argument); cancel_event empties the lobby; draw_lobby, rank_lobby and seat_lobby are the draw; the
  webhook trigger maps lobby_drawn.

Downgrade refuses while the ledger holds a lobby entry: every lobby entry wrote one, so without any, no
booking is or was in a lobby and the new columns carry nothing but their defaults.

Revises 0018 until the ticket types (0019) are merged; then it revises 0019 and its frozen copies of the
functions both touch are re-taken from the merged files.
"""

import sqlalchemy as sa
from alembic import op

from app.database.functions import create_or_replace, drop

revision = "0020"
down_revision = "0018"
branch_labels = None
depends_on = None

# The definitions this revision installs, frozen (app/database/functions.py); each is its
# app/<package>/sql/<function>.sql file as of this revision, and *_BEFORE as of 0018.
JOIN_LOBBY = """
CREATE OR REPLACE FUNCTION join_lobby(ev events, p_user_id text, p_request_id text, p_quantity integer,
                                      p_changed_at timestamptz)
RETURNS TABLE (outcome text, booking_id uuid, booking_status text, waiting_position integer,
               booking_created_at timestamptz, booking_updated_at timestamptz,
               booking_quantity integer, tickets_ahead bigint, booking_hold_expires_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    late boolean := ev.draw_started_at IS NOT NULL;
BEGIN
    INSERT INTO bookings AS b (event_id, user_id, status, quantity, created_at, updated_at)
    VALUES (ev.id, p_user_id, 'lobby', p_quantity, p_changed_at, p_changed_at)
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
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
    VALUES (ev.id, booking_id, p_user_id, 'lobby', p_request_id, p_quantity, p_changed_at);
    outcome := 'ok';
    RETURN NEXT;
END
$$;
"""

BOOK_TICKET = """
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
"""

CANCEL_BOOKING = """
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
"""

UPDATE_EVENT = """
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
    FOR entry IN SELECT r.rank, b.user_id, b.quantity
                   FROM lobby_ranks r
                   JOIN bookings b ON b.event_id = r.event_id AND b.id = r.booking_id
                  WHERE r.event_id = ev.id AND r.rank > ev.lobby_seated AND r.rank <= cursor_to
                    AND b.status = 'lobby'
                  ORDER BY r.rank LOOP
        PERFORM book_ticket(ev.id, entry.user_id, p_request_id, entry.quantity, entry.rank::integer);
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
                                 WHEN 'event_cancelled' THEN 'event.cancelled'
                                 WHEN 'lobby_drawn' THEN 'event.sales_opened' END AS type) m
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

LOBBY_ENTRIES = "SELECT count(*) FROM booking_events WHERE kind IN ('lobby', 'lobby_drawn')"
NEW_FUNCTIONS = (
    "join_lobby(events, text, text, integer, timestamptz)",
    "rank_lobby(events, timestamptz)",
    "seat_lobby(events, text, integer)",
    "draw_lobby(uuid, text, integer)",
)
# Replaced in both directions: their arguments (or cancel_booking's result columns) change.
SIGNATURES_BEFORE = (
    "book_ticket(uuid, text, text, integer)",
    "cancel_booking(uuid, text, text, integer, boolean)",
    "update_event(uuid, text, text, integer, integer, boolean, text, integer, integer)",
)
SIGNATURES = (
    "book_ticket(uuid, text, text, integer, integer)",
    "cancel_booking(uuid, text, text, integer, boolean)",
    "update_event(uuid, text, text, integer, integer, boolean, text, integer, integer, timestamptz)",
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
)
KINDS = KINDS_BEFORE + ("lobby", "lobby_drawn")
EVENT_KINDS_BEFORE = ("capacity_changed", "sales_closed", "sales_opened", "event_cancelled", "event_updated")
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
