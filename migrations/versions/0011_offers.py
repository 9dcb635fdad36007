"""Offers: a freed ticket is held for the next waiter for a limited time, accepted or passed on.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01

Contract, "Offers: a time-limited promotion" (issue 16):
- events gain `promotion` ('auto' | 'offer', default 'auto': v1's immediate confirmation) and
  `offer_ttl_seconds` (1..604800, default 86400).
- bookings gain the status `offered`, `offer_expires_at` (set when offered, kept as history) and
  `cancel_reason` ('declined' | 'expired', on a cancelled offer only), and a partial index on the
  offers by expiry, for the sweeper. The tickets of an offer are held: available_tickets does not
  count them, so available + confirmed + offered == total (flask check).
- promote_waiting takes the offers' deadline (NULL: confirm), which offer_deadline computes from the
  event's settings; cancel_booking, update_event and the new expire_offers pass it, and write
  `offered` entries for what they offer. cancel_booking gives an offer up (`declined`, or `expired` if
  its time had run out) and, with p_decline, is POST /api/decline; accept_offer confirms an offer.
  update_event takes promotion and offer_ttl_seconds. Their signatures change, so the old ones are
  dropped first, in both directions.
- The ledger gains the kinds offered, accepted, declined, expired; the webhook trigger makes them
  booking.offered, booking.confirmed and booking.cancelled.

Downgrade refuses while any offer kind is in the ledger: every offer wrote one, so without any, no
booking is offered and the new columns carry nothing but their defaults.
"""

import sqlalchemy as sa
from alembic import op

from app.database.functions import create_or_replace, drop

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# The definitions this revision installs, frozen (app/database/functions.py); each is its
# app/booking/sql/<function>.sql file as of this revision, and *_BEFORE as of 0010 (0009 for the trigger).
OFFER_DEADLINE = """
CREATE OR REPLACE FUNCTION offer_deadline(p_promotion text, p_offer_ttl_seconds integer, p_changed_at timestamptz)
RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_promotion = 'offer' THEN p_changed_at + make_interval(secs => p_offer_ttl_seconds) END
$$;
"""

PROMOTE_WAITING = """
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

CANCEL_BOOKING = """
CREATE OR REPLACE FUNCTION cancel_booking(p_event_id uuid, p_user_id text, p_request_id text, p_quantity integer DEFAULT NULL,
                                          p_decline boolean DEFAULT false)
RETURNS TABLE (outcome text, booking_id uuid, booking_created_at timestamptz,
               booking_updated_at timestamptz, promoted_id uuid, promoted_user_id text,
               promoted_created_at timestamptz, promoted_updated_at timestamptz,
               booking_status text, booking_quantity integer, waiting_position integer, tickets_ahead bigint,
               promoted_ids uuid[], promoted_user_ids text[], promoted_quantities integer[],
               promoted_created_ats timestamptz[], promoted_updated_ats timestamptz[],
               booking_offer_expires_at timestamptz, booking_cancel_reason text, promoted_offer_expires_at timestamptz)
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
        outcome := 'no_offer';
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
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
    VALUES (p_event_id, booking_id, p_user_id,
            CASE WHEN booking_status = 'cancelled' THEN coalesce(reason, 'cancelled') ELSE 'reduced' END, p_request_id,
            released,
            changed_at);
    available := ev.available_tickets + CASE WHEN held.status IN ('confirmed', 'offered') THEN released ELSE 0 END;
    promoted_offer_expires_at := offer_deadline(ev.promotion, ev.offer_ttl_seconds, changed_at);
    IF available > 0 THEN
        SELECT * INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats,
                      promoted_updated_ats, promoted_tickets
          FROM promote_waiting(p_event_id, available, changed_at, promoted_offer_expires_at);
    ELSE  -- nobody fits in no ticket: a waiting entry that leaves a sold-out event, the usual case
        SELECT '{}', '{}', '{}', '{}', '{}', 0
          INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats,
               promoted_updated_ats, promoted_tickets;
    END IF;
    IF promoted_tickets > 0 THEN
        INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
        SELECT p_event_id, p.id, p.user_id, CASE WHEN promoted_offer_expires_at IS NULL THEN 'promoted' ELSE 'offered' END,
               p_request_id, p.quantity, changed_at
          FROM unnest(promoted_ids, promoted_user_ids, promoted_quantities) WITH ORDINALITY
               AS p (id, user_id, quantity, step)
         ORDER BY p.step;
    END IF;
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
    IF booking_id = ANY (promoted_ids) THEN  -- a head that shrank until it fitted
        booking_status := CASE WHEN promoted_offer_expires_at IS NULL THEN 'confirmed' ELSE 'offered' END;
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

UPDATE_EVENT = """
CREATE OR REPLACE FUNCTION update_event(p_event_id uuid, p_request_id text, p_name text, p_total_tickets integer,
                                        p_max_per_booking integer, p_sales_open boolean, p_promotion text,
                                        p_offer_ttl_seconds integer)
RETURNS TABLE (outcome text, event_row events, promoted_ids uuid[], promoted_user_ids text[],
               promoted_quantities integer[], promoted_created_ats timestamptz[], promoted_updated_ats timestamptz[],
               promoted_offer_expires_at timestamptz)
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
    -- Only a raise frees tickets: after a cut, or with the same total, the head still does not fit.
    IF total > ev.total_tickets THEN
        SELECT * INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats,
                      promoted_updated_ats, promoted_tickets
          FROM promote_waiting(p_event_id, available, changed_at, promoted_offer_expires_at);
    END IF;
    INSERT INTO booking_events (event_id, kind, request_id, created_at, total_tickets_from, total_tickets_to)
    SELECT p_event_id, change.kind, p_request_id, changed_at, change.total_from, change.total_to
      FROM (VALUES (1, CASE WHEN p_sales_open THEN 'sales_opened' ELSE 'sales_closed' END, NULL::integer, NULL::integer,
                    p_sales_open IS DISTINCT FROM ev.sales_open AND p_sales_open IS NOT NULL),
                   (2, 'capacity_changed', ev.total_tickets, total, total <> ev.total_tickets))
           AS change (step, kind, total_from, total_to, happened)
     WHERE change.happened
     ORDER BY change.step;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
    SELECT p_event_id, p.id, p.user_id, CASE WHEN promoted_offer_expires_at IS NULL THEN 'promoted' ELSE 'offered' END,
           p_request_id, p.quantity, changed_at
      FROM unnest(promoted_ids, promoted_user_ids, promoted_quantities) WITH ORDINALITY AS p (id, user_id, quantity, step)
     ORDER BY p.step;
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
    RETURN NEXT;
END
$$;
"""

ACCEPT_OFFER = """
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
    SELECT * INTO held FROM bookings b
     WHERE b.event_id = p_event_id AND b.user_id = p_user_id AND b.status = 'offered';
    outcome := CASE WHEN NOT FOUND THEN 'no_offer' WHEN held.offer_expires_at <= changed_at THEN 'offer_expired'
                    ELSE 'ok' END;
    IF outcome <> 'ok' THEN
        RETURN NEXT;
        RETURN;
    END IF;
    UPDATE bookings b SET status = 'confirmed', updated_at = changed_at
     WHERE b.event_id = p_event_id AND b.id = held.id
    RETURNING b.id, b.status, b.created_at, b.updated_at, b.quantity, b.offer_expires_at
    INTO booking_id, booking_status, booking_created_at, booking_updated_at, booking_quantity,
         booking_offer_expires_at;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
    VALUES (p_event_id, held.id, p_user_id, 'accepted', p_request_id, held.quantity, changed_at);
    UPDATE events SET updated_at = changed_at WHERE id = p_event_id;
    RETURN NEXT;
END
$$;
"""

EXPIRE_OFFERS = """
CREATE OR REPLACE FUNCTION expire_offers(p_event_id uuid, p_request_id text)
RETURNS TABLE (outcome text, expired_offers integer, promoted_bookings integer)
LANGUAGE plpgsql AS $$
DECLARE
    ev events%ROWTYPE;
    released integer;  -- the tickets the expired offers held
    deadline timestamptz;  -- of the offers made now
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
    SELECT * INTO ev FROM events e WHERE e.id = p_event_id FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        outcome := 'busy';
        RETURN NEXT;
        RETURN;
    END IF;
    outcome := 'ok';
    changed_at := clock_timestamp();
    WITH expired AS (
        UPDATE bookings b SET status = 'cancelled', cancel_reason = 'expired', updated_at = changed_at
         WHERE b.event_id = p_event_id AND b.status = 'offered' AND b.offer_expires_at <= changed_at
        RETURNING b.id, b.user_id, b.quantity, b.seq),
    logged AS (
        INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
        SELECT p_event_id, x.id, x.user_id, 'expired', p_request_id, x.quantity, changed_at
          FROM expired x
         ORDER BY x.seq
        RETURNING quantity)
    SELECT count(*), coalesce(sum(l.quantity), 0) INTO expired_offers, released FROM logged l;
    IF expired_offers = 0 THEN
        RETURN NEXT;
        RETURN;
    END IF;
    deadline := offer_deadline(ev.promotion, ev.offer_ttl_seconds, changed_at);
    SELECT * INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats,
                  promoted_updated_ats, promoted_tickets
      FROM promote_waiting(p_event_id, ev.available_tickets + released, changed_at, deadline);
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
    SELECT p_event_id, p.id, p.user_id, CASE WHEN deadline IS NULL THEN 'promoted' ELSE 'offered' END,
           p_request_id, p.quantity, changed_at
      FROM unnest(promoted_ids, promoted_user_ids, promoted_quantities) WITH ORDINALITY AS p (id, user_id, quantity, step)
     ORDER BY p.step;
    UPDATE events e
       SET available_tickets = e.available_tickets + released - promoted_tickets,
           waiting_count = e.waiting_count - cardinality(promoted_ids),
           waiting_tickets = e.waiting_tickets - promoted_tickets,
           queue_promoted_entries = e.queue_promoted_entries + cardinality(promoted_ids),
           queue_promoted_tickets = e.queue_promoted_tickets + promoted_tickets,
           updated_at = changed_at
     WHERE e.id = p_event_id;
    promoted_bookings := cardinality(promoted_ids);
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
                                 WHEN 'expired' THEN 'booking.cancelled' END AS type) m
      JOIN webhooks w ON w.disabled_at IS NULL
                     AND (w.event_id IS NULL OR w.event_id = NEW.event_id)
                     AND (w.types IS NULL OR m.type = ANY (w.types))
      JOIN events e ON e.id = NEW.event_id
      JOIN bookings b ON b.event_id = NEW.event_id AND b.id = NEW.booking_id
     WHERE m.type IS NOT NULL;
    RETURN NULL;
END
$$
"""

PROMOTE_WAITING_BEFORE = """
CREATE OR REPLACE FUNCTION promote_waiting(
    p_event_id uuid, p_available integer, p_changed_at timestamptz,
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
        UPDATE bookings b SET status = 'confirmed', updated_at = p_changed_at
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

CANCEL_BOOKING_BEFORE = """
CREATE OR REPLACE FUNCTION cancel_booking(p_event_id uuid, p_user_id text, p_request_id text, p_quantity integer DEFAULT NULL)
RETURNS TABLE (outcome text, booking_id uuid, booking_created_at timestamptz,
               booking_updated_at timestamptz, promoted_id uuid, promoted_user_id text,
               promoted_created_at timestamptz, promoted_updated_at timestamptz,
               booking_status text, booking_quantity integer, waiting_position integer, tickets_ahead bigint,
               promoted_ids uuid[], promoted_user_ids text[], promoted_quantities integer[],
               promoted_created_ats timestamptz[], promoted_updated_ats timestamptz[])
LANGUAGE plpgsql AS $$
DECLARE
    ev events%ROWTYPE;
    held bookings%ROWTYPE;
    released integer;  -- the tickets the booking gives up
    available integer;  -- the event's, once they are released
    promoted_tickets integer;
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
    released := coalesce(p_quantity, held.quantity);
    booking_status := CASE WHEN released = held.quantity THEN 'cancelled' ELSE held.status END;
    -- A whole cancel keeps the quantity it held, as history; a partial one keeps the rest.
    UPDATE bookings b
       SET status = booking_status, updated_at = changed_at,
           quantity = b.quantity - CASE WHEN booking_status = 'cancelled' THEN 0 ELSE released END
     WHERE b.event_id = p_event_id AND b.id = held.id
    RETURNING b.id, b.created_at, b.updated_at, b.quantity
    INTO booking_id, booking_created_at, booking_updated_at, booking_quantity;
    IF held.status = 'waiting' THEN
        -- Left from the middle (or shrank): counted at its arrival rank, for the places behind it.
        INSERT INTO queue_departures AS d (event_id, node, entries, tickets)
        SELECT p_event_id, node, (booking_status = 'cancelled')::int, released
          FROM unnest(queue_cover_nodes(held.queue_ordinal, ev.queue_joined_entries)) AS node
        ON CONFLICT (event_id, node) DO UPDATE
           SET entries = d.entries + excluded.entries, tickets = d.tickets + excluded.tickets;
    END IF;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
    VALUES (p_event_id, booking_id, p_user_id,
            CASE WHEN booking_status = 'cancelled' THEN 'cancelled' ELSE 'reduced' END, p_request_id, released,
            changed_at);
    available := ev.available_tickets + CASE WHEN held.status = 'confirmed' THEN released ELSE 0 END;
    IF available > 0 THEN
        SELECT * INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats,
                      promoted_updated_ats, promoted_tickets
          FROM promote_waiting(p_event_id, available, changed_at);
    ELSE  -- nobody fits in no ticket: a waiting entry that leaves a sold-out event, the usual case
        SELECT '{}', '{}', '{}', '{}', '{}', 0
          INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats,
               promoted_updated_ats, promoted_tickets;
    END IF;
    IF promoted_tickets > 0 THEN
        INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
        SELECT p_event_id, p.id, p.user_id, 'promoted', p_request_id, p.quantity, changed_at
          FROM unnest(promoted_ids, promoted_user_ids, promoted_quantities) WITH ORDINALITY
               AS p (id, user_id, quantity, step)
         ORDER BY p.step;
    END IF;
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
    IF booking_id = ANY (promoted_ids) THEN
        booking_status := 'confirmed';  -- a head that shrank until it fitted
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
                                        p_max_per_booking integer, p_sales_open boolean)
RETURNS TABLE (outcome text, event_row events, promoted_ids uuid[], promoted_user_ids text[],
               promoted_quantities integer[], promoted_created_ats timestamptz[], promoted_updated_ats timestamptz[])
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
                           AND coalesce(p_sales_open, ev.sales_open) = ev.sales_open) THEN
        RETURN NEXT;
        RETURN;
    END IF;
    changed_at := clock_timestamp();
    available := ev.available_tickets + total - ev.total_tickets;
    -- Only a raise frees tickets: after a cut, or with the same total, the head still does not fit.
    IF total > ev.total_tickets THEN
        SELECT * INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats,
                      promoted_updated_ats, promoted_tickets
          FROM promote_waiting(p_event_id, available, changed_at);
    END IF;
    INSERT INTO booking_events (event_id, kind, request_id, created_at, total_tickets_from, total_tickets_to)
    SELECT p_event_id, change.kind, p_request_id, changed_at, change.total_from, change.total_to
      FROM (VALUES (1, CASE WHEN p_sales_open THEN 'sales_opened' ELSE 'sales_closed' END, NULL::integer, NULL::integer,
                    p_sales_open IS DISTINCT FROM ev.sales_open AND p_sales_open IS NOT NULL),
                   (2, 'capacity_changed', ev.total_tickets, total, total <> ev.total_tickets))
           AS change (step, kind, total_from, total_to, happened)
     WHERE change.happened
     ORDER BY change.step;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
    SELECT p_event_id, p.id, p.user_id, 'promoted', p_request_id, p.quantity, changed_at
      FROM unnest(promoted_ids, promoted_user_ids, promoted_quantities) WITH ORDINALITY AS p (id, user_id, quantity, step)
     ORDER BY p.step;
    UPDATE events e
       SET name = coalesce(p_name, e.name),
           total_tickets = total,
           available_tickets = available - promoted_tickets,
           max_per_booking = coalesce(p_max_per_booking, e.max_per_booking),
           sales_open = coalesce(p_sales_open, e.sales_open),
           waiting_count = e.waiting_count - cardinality(promoted_ids),
           waiting_tickets = e.waiting_tickets - promoted_tickets,
           queue_promoted_entries = e.queue_promoted_entries + cardinality(promoted_ids),
           queue_promoted_tickets = e.queue_promoted_tickets + promoted_tickets,
           updated_at = changed_at
     WHERE e.id = p_event_id
    RETURNING e.* INTO event_row;
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
                                 WHEN 'cancelled' THEN 'booking.cancelled' END AS type) m
      JOIN webhooks w ON w.disabled_at IS NULL
                     AND (w.event_id IS NULL OR w.event_id = NEW.event_id)
                     AND (w.types IS NULL OR m.type = ANY (w.types))
      JOIN events e ON e.id = NEW.event_id
      JOIN bookings b ON b.event_id = NEW.event_id AND b.id = NEW.booking_id
     WHERE m.type IS NOT NULL;
    RETURN NULL;
END
$$
"""

BOOKING_KINDS = ("booked", "waitlisted", "cancelled", "reduced", "promoted")
ORGANISER_KINDS = ("capacity_changed", "sales_closed", "sales_opened", "event_cancelled")
OFFER_KINDS = ("offered", "accepted", "declined", "expired")
OFFER_ENTRIES = "SELECT count(*) FROM booking_events WHERE kind IN ('offered', 'accepted', 'declined', 'expired')"
# Replaced in both directions: their arguments or result columns change.
CHANGED_SIGNATURES = (
    "promote_waiting(uuid, integer, timestamptz)",
    "cancel_booking(uuid, text, text, integer)",
    "update_event(uuid, text, text, integer, integer, boolean)",
)
NEW_SIGNATURES = (
    "promote_waiting(uuid, integer, timestamptz, timestamptz)",
    "cancel_booking(uuid, text, text, integer, boolean)",
    "update_event(uuid, text, text, integer, integer, boolean, text, integer)",
    "accept_offer(uuid, text, text)",
    "expire_offers(uuid, text)",
    "offer_deadline(text, integer, timestamptz)",
)
BOOKING_STATUSES_BEFORE = "status IN ('confirmed', 'waiting', 'cancelled')"
BOOKING_STATUSES = "status IN ('confirmed', 'waiting', 'offered', 'cancelled')"
OFFER_CHECKS = {
    ("events", "promotion_known"): "promotion IN ('auto', 'offer')",
    ("events", "offer_ttl_range"): "offer_ttl_seconds BETWEEN 1 AND 604800",
    ("bookings", "offer_has_expiry"): "status <> 'offered' OR offer_expires_at IS NOT NULL",
    ("bookings", "cancel_reason_known"): "cancel_reason IS NULL OR (status = 'cancelled' "
    "AND cancel_reason IN ('declined', 'expired'))",
}


def _kinds(kinds) -> str:
    return "kind IN (" + ", ".join(f"'{kind}'" for kind in kinds) + ")"


def upgrade() -> None:
    op.add_column("events", sa.Column("promotion", sa.Text, server_default=sa.text("'auto'"), nullable=False))
    op.add_column("events", sa.Column("offer_ttl_seconds", sa.Integer, server_default=sa.text("86400"), nullable=False))
    op.add_column("bookings", sa.Column("offer_expires_at", sa.DateTime(timezone=True)))
    op.add_column("bookings", sa.Column("cancel_reason", sa.Text))
    _replace_check("bookings", "status_known", BOOKING_STATUSES)
    for (table, name), condition in OFFER_CHECKS.items():
        op.create_check_constraint(op.f(f"ck_{table}_{name}"), table, condition)
    op.create_index(
        op.f("ix_bookings_offer_expires_at"),
        "bookings",
        ["offer_expires_at"],
        postgresql_where=sa.text("status = 'offered'"),
    )
    _replace_check("booking_events", "kind_known", _kinds(BOOKING_KINDS + ORGANISER_KINDS + OFFER_KINDS))
    drop(*CHANGED_SIGNATURES)
    create_or_replace(
        OFFER_DEADLINE,
        PROMOTE_WAITING,
        CANCEL_BOOKING,
        UPDATE_EVENT,
        ACCEPT_OFFER,
        EXPIRE_OFFERS,
        ENQUEUE_WEBHOOK_MESSAGES,
    )


def downgrade() -> None:
    entries = op.get_bind().execute(sa.text(OFFER_ENTRIES)).scalar_one()
    if entries:
        raise RuntimeError(
            f"cannot downgrade below 0010: the ledger holds {entries} offer entries (offered, accepted, declined, "
            "expired), which the schema before it cannot represent; nothing was changed."
        )
    drop(*NEW_SIGNATURES)
    create_or_replace(
        PROMOTE_WAITING_BEFORE, CANCEL_BOOKING_BEFORE, UPDATE_EVENT_BEFORE, ENQUEUE_WEBHOOK_MESSAGES_BEFORE
    )
    _replace_check("booking_events", "kind_known", _kinds(BOOKING_KINDS + ORGANISER_KINDS))
    op.drop_index(op.f("ix_bookings_offer_expires_at"), "bookings")
    for table, name in OFFER_CHECKS:
        op.drop_constraint(op.f(f"ck_{table}_{name}"), table, type_="check")
    _replace_check("bookings", "status_known", BOOKING_STATUSES_BEFORE)
    op.drop_column("bookings", "cancel_reason")
    op.drop_column("bookings", "offer_expires_at")
    op.drop_column("events", "offer_ttl_seconds")
    op.drop_column("events", "promotion")


def _replace_check(table: str, name: str, condition: str) -> None:
    op.drop_constraint(op.f(f"ck_{table}_{name}"), table, type_="check")
    op.create_check_constraint(op.f(f"ck_{table}_{name}"), table, condition)
