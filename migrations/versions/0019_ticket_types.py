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
BOOK_TICKET = """
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
        -- that nobody has had yet, so it starts as a copy of the old root (queue_cover_nodes.sql), in
        -- every tree of the event (the event-wide one, and each type's once it has several).
        INSERT INTO queue_departures (event_id, ticket_type, node, entries, tickets)
        SELECT p_event_id, d.ticket_type, 2 * d.node, d.entries, d.tickets
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
        INSERT INTO queue_departures AS d (event_id, ticket_type, node, entries, tickets)
        SELECT p_event_id, 0, node, (booking_status = 'cancelled')::int, released
          FROM unnest(queue_cover_nodes(held.queue_ordinal, ev.queue_joined_entries)) AS node
        ON CONFLICT (event_id, ticket_type, node) DO UPDATE
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
TRIGGER = """
CREATE TRIGGER events_standard_ticket_type AFTER INSERT ON events
FOR EACH ROW EXECUTE FUNCTION add_standard_ticket_type()
"""
BACKFILL = """
INSERT INTO ticket_types (event_id, position, code, total_tickets)
SELECT e.id, 1, 'standard', e.total_tickets FROM events e
"""
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
SIGNATURES_BEFORE = ()
SIGNATURES = ()


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
    create_or_replace(ADD_STANDARD_TICKET_TYPE, BOOK_TICKET, CANCEL_BOOKING, WAITING_PLACE)
    op.execute(TRIGGER)


def downgrade() -> None:
    typed = op.get_bind().execute(sa.text(TYPED_EVENTS)).scalar_one()
    if typed:
        raise RuntimeError(
            f"cannot downgrade below 0019: {typed} ticket types are not an event's one `standard` type, "
            "which the schema before it cannot represent; nothing was changed."
        )
    op.execute("DROP TRIGGER events_standard_ticket_type ON events")
    drop(*SIGNATURES, "add_standard_ticket_type()")
    create_or_replace(BOOK_TICKET_BEFORE, CANCEL_BOOKING_BEFORE, WAITING_PLACE_BEFORE)
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
    op.drop_column("events", "ticket_type_count")
    op.drop_table("ticket_types")


def _replace_check(table: str, name: str, condition: str) -> None:
    op.drop_constraint(op.f(f"ck_{table}_{name}"), table, type_="check")
    op.create_check_constraint(op.f(f"ck_{table}_{name}"), table, condition)
