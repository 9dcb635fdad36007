"""cancel_booking and update_event return promoted_status, the status their promoted bookings get.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07

Python rebuilt a promoted booking's status (confirmed, or offered) from promoted_offer_expires_at,
repeating the functions' own rule. Each function now states it once, returns it as the last column
`promoted_status`, and writes its ledger kinds and a shrunk head's status from it. The result's columns
change, so each old signature is dropped first, in both directions. Nothing else changes: no statement
is added under the event lock.
"""

from app.database.functions import create_or_replace, drop

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

SIGNATURES = (
    "cancel_booking(uuid, text, text, integer, boolean)",
    "update_event(uuid, text, text, integer, integer, boolean, text, integer)",
)

# The definitions this revision installs, frozen (app/database/functions.py); each is its
# app/booking/sql/<function>.sql file as of this revision, and *_BEFORE as of 0013 (cancel_booking)
# and 0015 (update_event).
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

UPDATE_EVENT = """
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

CANCEL_BOOKING_BEFORE = """
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
        SELECT p_event_id, p.id, p.user_id, CASE WHEN promoted_offer_expires_at IS NULL THEN 'promoted' ELSE 'offered' END,
               p_request_id, p.quantity, changed_at
          FROM unnest(promoted_ids, promoted_user_ids, promoted_quantities) WITH ORDINALITY
               AS p (id, user_id, quantity, step)
         ORDER BY p.step;
    END IF;
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

UPDATE_EVENT_BEFORE = """
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
    SELECT p_event_id, p.id, p.user_id, CASE WHEN promoted_offer_expires_at IS NULL THEN 'promoted' ELSE 'offered' END,
           p_request_id, p.quantity, changed_at
      FROM unnest(promoted_ids, promoted_user_ids, promoted_quantities) WITH ORDINALITY AS p (id, user_id, quantity, step)
     ORDER BY p.step;
    RETURN NEXT;
END
$$;
"""


def upgrade() -> None:
    drop(*SIGNATURES)
    create_or_replace(CANCEL_BOOKING, UPDATE_EVENT)


def downgrade() -> None:
    drop(*SIGNATURES)
    create_or_replace(CANCEL_BOOKING_BEFORE, UPDATE_EVENT_BEFORE)
