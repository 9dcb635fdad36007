"""Checkout holds: a booking that gets tickets waits for its payment for a limited time (issue 25).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07

Contract v3, "Checkout holds":
- events gain `hold_ttl_seconds` (1..86400, or NULL, the default: no holds) and `held_tickets`, the
  tickets in held bookings, a counter kept under the event lock like the others (taken tickets: at most
  total - available).
- bookings gain the status `held`, `hold_expires_at` (set when held, kept as history: a confirmed booking
  that has one was paid) and `payment_reference` (1..128 characters, set by a confirm); `cancel_reason`
  gains `hold_expired`; a partial index on the holds by deadline, for the sweeper.
- promotion_terms replaces offer_deadline: what a promotion makes of the head (confirmed, offered, or
  held) and until when; promote_waiting takes that status. book_ticket (so book_many), promote_waiting
  (so cancel_booking, update_event, expire_offers) and accept_offer hold the tickets when the event has
  holds on: one more column in the statements they ran already, no statement more. confirm_hold confirms
  a hold, expire_holds is the hold sweeper's step; what it and expire_offers do once they have expired
  something (promote, count, write the ledger) is one function, pass_on_expired. cancel_booking and update_event return the holds' deadline
  (update_event takes hold_ttl_seconds: 0 turns holds off); cancel_event zeroes held_tickets. Changed
  arguments or result columns: the old signatures are dropped first, in both directions.
- The ledger gains the kinds held, paid, hold_expired; the webhook trigger makes them booking.held,
  booking.confirmed and booking.cancelled.

Downgrade refuses while any hold kind is in the ledger: every hold wrote one, so without any, no booking
is held and the new columns carry nothing but their defaults.
"""

import sqlalchemy as sa
from alembic import op

from app.database.functions import create_or_replace, drop

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# The definitions this revision installs, frozen (app/database/functions.py); each is its
# app/<package>/sql/<function>.sql file as of this revision, and *_BEFORE as of 0017 (each function's
# latest revision before it: 0011 offer_deadline; 0012 accept_offer; 0013 book_ticket, promote_waiting;
# 0014 expire_offers, cancel_event; 0015 the trigger; 0017 cancel_booking, update_event; 0005 book_many
# as 0008 left it).
PROMOTION_TERMS = """
CREATE OR REPLACE FUNCTION promotion_terms(p_promotion text, p_offer_ttl_seconds integer, p_hold_ttl_seconds integer,
                                           p_changed_at timestamptz, OUT status text, OUT expires_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_promotion = 'offer' THEN 'offered'
                WHEN p_hold_ttl_seconds IS NOT NULL THEN 'held'
                ELSE 'confirmed' END,
           p_changed_at + make_interval(secs => CASE WHEN p_promotion = 'offer' THEN p_offer_ttl_seconds
                                                     ELSE p_hold_ttl_seconds END)
$$;
"""

PROMOTE_WAITING = """
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

BOOK_MANY = """
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

UPDATE_EVENT = """
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

ACCEPT_OFFER = """
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

EXPIRE_OFFERS = """
CREATE OR REPLACE FUNCTION expire_offers(p_event_id uuid, p_request_id text)
RETURNS TABLE (outcome text, expired_offers integer, promoted_bookings integer)
LANGUAGE plpgsql
SET lock_timeout = '2s'
AS $$
DECLARE
    ev events%ROWTYPE;
    expired_ids uuid[];  -- the offers expired now, oldest first, for the ledger
    expired_user_ids text[];
    expired_quantities integer[];
    changed_at timestamptz;
BEGIN
    expired_offers := 0;
    promoted_bookings := 0;
    BEGIN
        SELECT * INTO ev FROM events e WHERE e.id = p_event_id FOR UPDATE;
    EXCEPTION WHEN lock_not_available THEN
        outcome := 'busy';
        RETURN NEXT;
        RETURN;
    END;
    IF NOT FOUND THEN
        outcome := 'event_not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    outcome := 'ok';
    changed_at := clock_timestamp();
    WITH claimed AS (
        SELECT b.id FROM bookings b
         WHERE b.event_id = p_event_id AND b.status = 'offered' AND b.offer_expires_at <= changed_at
           FOR UPDATE SKIP LOCKED),
    expired AS (
        UPDATE bookings b SET status = 'cancelled', cancel_reason = 'expired', updated_at = changed_at
          FROM claimed c
         WHERE b.event_id = p_event_id AND b.id = c.id
        RETURNING b.id, b.user_id, b.quantity, b.seq)
    SELECT array_agg(x.id ORDER BY x.seq), array_agg(x.user_id ORDER BY x.seq), array_agg(x.quantity ORDER BY x.seq),
           count(*)
      INTO expired_ids, expired_user_ids, expired_quantities, expired_offers
      FROM expired x;
    IF expired_offers > 0 THEN
        promoted_bookings := pass_on_expired(ev, p_request_id, changed_at, 'expired', expired_ids, expired_user_ids,
                                             expired_quantities);
    END IF;
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

CONFIRM_HOLD = """
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

EXPIRE_HOLDS = """
CREATE OR REPLACE FUNCTION expire_holds(p_event_id uuid, p_request_id text)
RETURNS TABLE (outcome text, expired_holds integer, promoted_bookings integer)
LANGUAGE plpgsql
SET lock_timeout = '2s'
AS $$
DECLARE
    ev events%ROWTYPE;
    expired_ids uuid[];  -- the holds expired now, oldest first, for the ledger
    expired_user_ids text[];
    expired_quantities integer[];
    changed_at timestamptz;
BEGIN
    expired_holds := 0;
    promoted_bookings := 0;
    BEGIN
        SELECT * INTO ev FROM events e WHERE e.id = p_event_id FOR UPDATE;
    EXCEPTION WHEN lock_not_available THEN
        outcome := 'busy';
        RETURN NEXT;
        RETURN;
    END;
    IF NOT FOUND THEN
        outcome := 'event_not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    outcome := 'ok';
    changed_at := clock_timestamp();
    WITH claimed AS (
        SELECT b.id FROM bookings b
         WHERE b.event_id = p_event_id AND b.status = 'held' AND b.hold_expires_at <= changed_at
           FOR UPDATE SKIP LOCKED),
    expired AS (
        UPDATE bookings b SET status = 'cancelled', cancel_reason = 'hold_expired', updated_at = changed_at
          FROM claimed c
         WHERE b.event_id = p_event_id AND b.id = c.id
        RETURNING b.id, b.user_id, b.quantity, b.seq)
    SELECT array_agg(x.id ORDER BY x.seq), array_agg(x.user_id ORDER BY x.seq), array_agg(x.quantity ORDER BY x.seq),
           count(*)
      INTO expired_ids, expired_user_ids, expired_quantities, expired_holds
      FROM expired x;
    IF expired_holds > 0 THEN
        promoted_bookings := pass_on_expired(ev, p_request_id, changed_at, 'hold_expired', expired_ids, expired_user_ids,
                                             expired_quantities);
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

OFFER_DEADLINE_BEFORE = """
CREATE OR REPLACE FUNCTION offer_deadline(p_promotion text, p_offer_ttl_seconds integer, p_changed_at timestamptz)
RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_promotion = 'offer' THEN p_changed_at + make_interval(secs => p_offer_ttl_seconds) END
$$;
"""

PROMOTE_WAITING_BEFORE = """
CREATE OR REPLACE FUNCTION promote_waiting(
    p_event_id uuid, p_available integer, p_changed_at timestamptz, p_offer_expires_at timestamptz,
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
           SET status = CASE WHEN p_offer_expires_at IS NULL THEN 'confirmed' ELSE 'offered' END,
               offer_expires_at = p_offer_expires_at, updated_at = p_changed_at
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
               booking_quantity integer, tickets_ahead bigint)
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
    booking_status := CASE WHEN waits THEN 'waiting' ELSE 'confirmed' END;
    INSERT INTO bookings AS b (event_id, user_id, status, quantity, queue_ordinal, queue_tickets_before,
                               created_at, updated_at)
    VALUES (p_event_id, p_user_id, booking_status, p_quantity,
            CASE WHEN waits THEN ev.queue_joined_entries + 1 END,
            CASE WHEN waits THEN ev.queue_joined_tickets END, changed_at, changed_at)
    ON CONFLICT (event_id, user_id) WHERE status <> 'cancelled' DO NOTHING
    RETURNING b.id, b.created_at, b.updated_at, b.quantity
    INTO booking_id, booking_created_at, booking_updated_at, booking_quantity;
    IF NOT FOUND THEN
        outcome := 'already_booked';
        booking_status := NULL;
        RETURN NEXT;
        RETURN;
    END IF;
    UPDATE events
       SET available_tickets = available_tickets - CASE WHEN waits THEN 0 ELSE p_quantity END,
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
    VALUES (p_event_id, booking_id, p_user_id, CASE WHEN waits THEN 'waitlisted' ELSE 'booked' END,
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
               booking_quantity integer, tickets_ahead bigint)
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
               promoted_status text)
LANGUAGE plpgsql AS $$
DECLARE
    ev events%ROWTYPE;
    held bookings%ROWTYPE;
    released integer;  -- the tickets the booking gives up
    available integer;  -- the event's, once they are released
    promoted_tickets integer;
    reason text;  -- why an offer ends: declined, or expired
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
    END IF;
    -- A whole cancel keeps the quantity it held, as history; a partial one keeps the rest.
    UPDATE bookings b
       SET status = booking_status, updated_at = changed_at, cancel_reason = reason,
           quantity = b.quantity - CASE WHEN booking_status = 'cancelled' THEN 0 ELSE released END
     WHERE b.event_id = p_event_id AND b.id = held.id
    RETURNING b.id, b.created_at, b.updated_at, b.quantity, b.offer_expires_at, b.cancel_reason
    INTO booking_id, booking_created_at, booking_updated_at, booking_quantity, booking_offer_expires_at,
         booking_cancel_reason;
    IF held.status = 'waiting' THEN
        -- Left from the middle (or shrank): counted at its arrival rank, for the places behind it.
        INSERT INTO queue_departures AS d (event_id, node, entries, tickets)
        SELECT p_event_id, node, (booking_status = 'cancelled')::int, released
          FROM unnest(queue_cover_nodes(held.queue_ordinal, ev.queue_joined_entries)) AS node
        ON CONFLICT (event_id, node) DO UPDATE
           SET entries = d.entries + excluded.entries, tickets = d.tickets + excluded.tickets;
    END IF;
    available := ev.available_tickets + CASE WHEN held.status IN ('confirmed', 'offered') THEN released ELSE 0 END;
    promoted_offer_expires_at := offer_deadline(ev.promotion, ev.offer_ttl_seconds, changed_at);
    promoted_status := CASE WHEN promoted_offer_expires_at IS NULL THEN 'confirmed' ELSE 'offered' END;
    IF available > 0 THEN
        SELECT * INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats,
                      promoted_updated_ats, promoted_tickets
          FROM promote_waiting(p_event_id, available, changed_at, promoted_offer_expires_at);
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
           updated_at = changed_at
     WHERE id = p_event_id;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
    VALUES (p_event_id, booking_id, p_user_id,
            CASE WHEN booking_status = 'cancelled' THEN coalesce(reason, 'cancelled') ELSE 'reduced' END, p_request_id,
            released,
            changed_at);
    IF promoted_tickets > 0 THEN
        INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
        SELECT p_event_id, p.id, p.user_id, CASE promoted_status WHEN 'confirmed' THEN 'promoted' ELSE 'offered' END,
               p_request_id, p.quantity, changed_at
          FROM unnest(promoted_ids, promoted_user_ids, promoted_quantities) WITH ORDINALITY
               AS p (id, user_id, quantity, step)
         ORDER BY p.step;
    END IF;
    IF booking_id = ANY (promoted_ids) THEN  -- a head that shrank until it fitted
        booking_status := promoted_status;
        booking_offer_expires_at := promoted_offer_expires_at;
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
                                        p_offer_ttl_seconds integer)
RETURNS TABLE (outcome text, event_row events, promoted_ids uuid[], promoted_user_ids text[],
               promoted_quantities integer[], promoted_created_ats timestamptz[], promoted_updated_ats timestamptz[],
               promoted_offer_expires_at timestamptz, promoted_status text)
LANGUAGE plpgsql AS $$
DECLARE
    ev events%ROWTYPE;
    total integer;
    available integer;  -- the event's, once the new total applies
    promoted_tickets integer;
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
                           AND coalesce(p_offer_ttl_seconds, ev.offer_ttl_seconds) = ev.offer_ttl_seconds) THEN
        RETURN NEXT;
        RETURN;
    END IF;
    changed_at := clock_timestamp();
    available := ev.available_tickets + total - ev.total_tickets;
    promoted_offer_expires_at := offer_deadline(coalesce(p_promotion, ev.promotion),
                                                coalesce(p_offer_ttl_seconds, ev.offer_ttl_seconds), changed_at);
    promoted_status := CASE WHEN promoted_offer_expires_at IS NULL THEN 'confirmed' ELSE 'offered' END;
    -- Only a raise frees tickets: after a cut, or with the same total, the head still does not fit.
    IF total > ev.total_tickets THEN
        SELECT * INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats,
                      promoted_updated_ats, promoted_tickets
          FROM promote_waiting(p_event_id, available, changed_at, promoted_offer_expires_at);
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
    SELECT p_event_id, p.id, p.user_id, CASE promoted_status WHEN 'confirmed' THEN 'promoted' ELSE 'offered' END,
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
               booking_updated_at timestamptz, booking_quantity integer, booking_offer_expires_at timestamptz)
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
    UPDATE bookings b SET status = 'confirmed', updated_at = changed_at
     WHERE b.event_id = p_event_id AND b.id = held.id
    RETURNING b.id, b.status, b.created_at, b.updated_at, b.quantity, b.offer_expires_at
    INTO booking_id, booking_status, booking_created_at, booking_updated_at, booking_quantity,
         booking_offer_expires_at;
    UPDATE events SET updated_at = changed_at WHERE id = p_event_id;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
    VALUES (p_event_id, held.id, p_user_id, 'accepted', p_request_id, held.quantity, changed_at);
    RETURN NEXT;
END
$$;
"""

EXPIRE_OFFERS_BEFORE = """
CREATE OR REPLACE FUNCTION expire_offers(p_event_id uuid, p_request_id text)
RETURNS TABLE (outcome text, expired_offers integer, promoted_bookings integer)
LANGUAGE plpgsql
SET lock_timeout = '2s'
AS $$
DECLARE
    ev events%ROWTYPE;
    released integer;  -- the tickets the expired offers held
    deadline timestamptz;  -- of the offers made now
    expired_ids uuid[];  -- the offers expired now, oldest first, for the ledger
    expired_user_ids text[];
    expired_quantities integer[];
    promoted_ids uuid[];
    promoted_user_ids text[];
    promoted_quantities integer[];
    promoted_created_ats timestamptz[];
    promoted_updated_ats timestamptz[];
    promoted_tickets integer;
    changed_at timestamptz;
BEGIN
    expired_offers := 0;
    promoted_bookings := 0;
    BEGIN
        SELECT * INTO ev FROM events e WHERE e.id = p_event_id FOR UPDATE;
    EXCEPTION WHEN lock_not_available THEN
        outcome := 'busy';
        RETURN NEXT;
        RETURN;
    END;
    IF NOT FOUND THEN
        outcome := 'event_not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    outcome := 'ok';
    changed_at := clock_timestamp();
    WITH claimed AS (
        SELECT b.id FROM bookings b
         WHERE b.event_id = p_event_id AND b.status = 'offered' AND b.offer_expires_at <= changed_at
           FOR UPDATE SKIP LOCKED),
    expired AS (
        UPDATE bookings b SET status = 'cancelled', cancel_reason = 'expired', updated_at = changed_at
          FROM claimed c
         WHERE b.event_id = p_event_id AND b.id = c.id
        RETURNING b.id, b.user_id, b.quantity, b.seq)
    SELECT array_agg(x.id ORDER BY x.seq), array_agg(x.user_id ORDER BY x.seq), array_agg(x.quantity ORDER BY x.seq),
           count(*), coalesce(sum(x.quantity), 0)
      INTO expired_ids, expired_user_ids, expired_quantities, expired_offers, released
      FROM expired x;
    IF expired_offers = 0 THEN
        RETURN NEXT;
        RETURN;
    END IF;
    deadline := offer_deadline(ev.promotion, ev.offer_ttl_seconds, changed_at);
    SELECT * INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats,
                  promoted_updated_ats, promoted_tickets
      FROM promote_waiting(p_event_id, ev.available_tickets + released, changed_at, deadline);
    -- The event row first, then the ledger: the webhook trigger snapshots the event at each entry.
    UPDATE events e
       SET available_tickets = e.available_tickets + released - promoted_tickets,
           waiting_count = e.waiting_count - cardinality(promoted_ids),
           waiting_tickets = e.waiting_tickets - promoted_tickets,
           queue_promoted_entries = e.queue_promoted_entries + cardinality(promoted_ids),
           queue_promoted_tickets = e.queue_promoted_tickets + promoted_tickets,
           updated_at = changed_at
     WHERE e.id = p_event_id;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
    SELECT p_event_id, x.id, x.user_id, 'expired', p_request_id, x.quantity, changed_at
      FROM unnest(expired_ids, expired_user_ids, expired_quantities) WITH ORDINALITY AS x (id, user_id, quantity, step)
     ORDER BY x.step;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
    SELECT p_event_id, p.id, p.user_id, CASE WHEN deadline IS NULL THEN 'promoted' ELSE 'offered' END,
           p_request_id, p.quantity, changed_at
      FROM unnest(promoted_ids, promoted_user_ids, promoted_quantities) WITH ORDINALITY AS p (id, user_id, quantity, step)
     ORDER BY p.step;
    promoted_bookings := cardinality(promoted_ids);
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
           updated_at = changed_at
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

BOOKING_KINDS = ("booked", "waitlisted", "cancelled", "reduced", "promoted")
ORGANISER_KINDS = ("capacity_changed", "sales_closed", "sales_opened", "event_cancelled", "event_updated")
OFFER_KINDS = ("offered", "accepted", "declined", "expired")
HOLD_KINDS = ("held", "paid", "hold_expired")
HOLD_ENTRIES = "SELECT count(*) FROM booking_events WHERE kind IN ('held', 'paid', 'hold_expired')"
# Replaced in both directions: their arguments or result columns change.
SIGNATURES_BEFORE = (
    "offer_deadline(text, integer, timestamptz)",
    "promote_waiting(uuid, integer, timestamptz, timestamptz)",
    "book_ticket(uuid, text, text, integer)",
    "book_many(uuid, text[], text[], integer[])",
    "cancel_booking(uuid, text, text, integer, boolean)",
    "update_event(uuid, text, text, integer, integer, boolean, text, integer)",
    "accept_offer(uuid, text, text)",
)
SIGNATURES = (
    "promotion_terms(text, integer, integer, timestamptz)",
    "promote_waiting(uuid, integer, timestamptz, text, timestamptz)",
    "book_ticket(uuid, text, text, integer)",
    "book_many(uuid, text[], text[], integer[])",
    "cancel_booking(uuid, text, text, integer, boolean)",
    "update_event(uuid, text, text, integer, integer, boolean, text, integer, integer)",
    "accept_offer(uuid, text, text)",
    "confirm_hold(uuid, text, text, text)",
    "expire_holds(uuid, text)",
    "pass_on_expired(events, text, timestamptz, text, uuid[], text[], integer[])",
)
BOOKING_STATUSES_BEFORE = "status IN ('confirmed', 'waiting', 'offered', 'cancelled')"
BOOKING_STATUSES = "status IN ('confirmed', 'waiting', 'offered', 'held', 'cancelled')"
CANCEL_REASONS_BEFORE = "cancel_reason IS NULL OR (status = 'cancelled' AND cancel_reason IN ('declined', 'expired'))"
CANCEL_REASONS = (
    "cancel_reason IS NULL OR (status = 'cancelled' AND cancel_reason IN ('declined', 'expired', 'hold_expired'))"
)
HOLD_CHECKS = {
    ("events", "hold_ttl_range"): "hold_ttl_seconds BETWEEN 1 AND 86400",
    ("events", "held_tickets_range"): "held_tickets BETWEEN 0 AND total_tickets - available_tickets",
    ("bookings", "hold_has_expiry"): "status <> 'held' OR hold_expires_at IS NOT NULL",
    ("bookings", "payment_reference_length"): "char_length(payment_reference) BETWEEN 1 AND 128",
}


def _kinds(kinds) -> str:
    return "kind IN (" + ", ".join(f"'{kind}'" for kind in kinds) + ")"


def upgrade() -> None:
    op.add_column("events", sa.Column("hold_ttl_seconds", sa.Integer))
    op.add_column("events", sa.Column("held_tickets", sa.Integer, server_default=sa.text("0"), nullable=False))
    op.add_column("bookings", sa.Column("hold_expires_at", sa.DateTime(timezone=True)))
    op.add_column("bookings", sa.Column("payment_reference", sa.Text))
    _replace_check("bookings", "status_known", BOOKING_STATUSES)
    _replace_check("bookings", "cancel_reason_known", CANCEL_REASONS)
    for (table, name), condition in HOLD_CHECKS.items():
        op.create_check_constraint(op.f(f"ck_{table}_{name}"), table, condition)
    op.create_index(
        op.f("ix_bookings_hold_expires_at"),
        "bookings",
        ["hold_expires_at"],
        postgresql_where=sa.text("status = 'held'"),
    )
    _replace_check("booking_events", "kind_known", _kinds(BOOKING_KINDS + ORGANISER_KINDS + OFFER_KINDS + HOLD_KINDS))
    drop(*SIGNATURES_BEFORE)
    create_or_replace(
        PROMOTION_TERMS,
        PROMOTE_WAITING,
        BOOK_TICKET,
        BOOK_MANY,
        CANCEL_BOOKING,
        UPDATE_EVENT,
        ACCEPT_OFFER,
        PASS_ON_EXPIRED,
        EXPIRE_OFFERS,
        CANCEL_EVENT,
        CONFIRM_HOLD,
        EXPIRE_HOLDS,
        ENQUEUE_WEBHOOK_MESSAGES,
    )


def downgrade() -> None:
    entries = op.get_bind().execute(sa.text(HOLD_ENTRIES)).scalar_one()
    if entries:
        raise RuntimeError(
            f"cannot downgrade below 0018: the ledger holds {entries} hold entries (held, paid, hold_expired), "
            "which the schema before it cannot represent; nothing was changed."
        )
    drop(*SIGNATURES)
    create_or_replace(
        OFFER_DEADLINE_BEFORE,
        PROMOTE_WAITING_BEFORE,
        BOOK_TICKET_BEFORE,
        BOOK_MANY_BEFORE,
        CANCEL_BOOKING_BEFORE,
        UPDATE_EVENT_BEFORE,
        ACCEPT_OFFER_BEFORE,
        EXPIRE_OFFERS_BEFORE,
        CANCEL_EVENT_BEFORE,
        ENQUEUE_WEBHOOK_MESSAGES_BEFORE,
    )
    _replace_check("booking_events", "kind_known", _kinds(BOOKING_KINDS + ORGANISER_KINDS + OFFER_KINDS))
    op.drop_index(op.f("ix_bookings_hold_expires_at"), "bookings")
    for table, name in HOLD_CHECKS:
        op.drop_constraint(op.f(f"ck_{table}_{name}"), table, type_="check")
    _replace_check("bookings", "cancel_reason_known", CANCEL_REASONS_BEFORE)
    _replace_check("bookings", "status_known", BOOKING_STATUSES_BEFORE)
    op.drop_column("bookings", "payment_reference")
    op.drop_column("bookings", "hold_expires_at")
    op.drop_column("events", "held_tickets")
    op.drop_column("events", "hold_ttl_seconds")


def _replace_check(table: str, name: str, condition: str) -> None:
    op.drop_constraint(op.f(f"ck_{table}_{name}"), table, type_="check")
    op.create_check_constraint(op.f(f"ck_{table}_{name}"), table, condition)
