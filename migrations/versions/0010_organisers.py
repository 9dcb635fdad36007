"""Organisers run an event over its life: status, sales, capacity changes, calling it off, in the ledger.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01

Contract, "Organisers: events over their life" (issue 14):
- events gain `status` ('active' | 'cancelled'), `sales_open` (default true) and `seq` (an identity:
  the order events were opened in, existing ones numbered by created_at), with two indexes for the
  organisers' list, newest first by seq, keyset-paginated, with or without a status filter. Neither is
  unique, as Citus requires of a key without the distribution column (docs/scaling.md).
  bookings gain an index on (event_id, seq) for the organisers' list of an event's bookings.
- update_event (PATCH /api/events/<id>) and cancel_event (POST /api/events/<id>/cancel), one round trip
  each under the event lock; a capacity raise promotes by promote_waiting's strict FIFO rule.
- book_ticket refuses a cancelled event ('event_cancelled') and closed sales ('sales_closed');
  cancel_booking refuses a cancelled event. Their signatures do not change.
- promote_waiting walks the queue once instead of finding each head afresh, which stepped over the
  index entries of every entry promoted before it: a raise that promotes 50 000 waiters took 70 s,
  now 1.8 s. Same signature, same rule.
- The ledger records the organiser's changes as kinds of their own, `capacity_changed` (with the
  totals before and after, so `flask check` can replay it), `sales_closed`, `sales_opened`,
  `event_cancelled`; they concern the event, not one booking, so booking_id, user_id and quantity
  are NULL on them (and on them only), and the bookings they touched follow under the same request
  id (`promoted`, `cancelled`). Webhooks read them as event.updated / event.cancelled.

Downgrade refuses while any organiser entry is in the ledger: every cancel, sales change and resize
wrote one, so without any, every event is active with sales open and the columns carry nothing.
"""

import sqlalchemy as sa
from alembic import op

from app.database.functions import create_or_replace, drop

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# The definitions this revision installs, frozen (app/database/functions.py); each is its
# app/booking/sql/<function>.sql file as of this revision.
BOOK_TICKET = """
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

CANCEL_BOOKING = """
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

PROMOTE_WAITING = """
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

UPDATE_EVENT = """
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
    UPDATE events e
       SET status = 'cancelled', available_tickets = e.total_tickets, waiting_count = 0, waiting_tickets = 0,
           updated_at = changed_at
     WHERE e.id = p_event_id
    RETURNING e.* INTO event_row;
    RETURN NEXT;
END
$$;
"""

# 0008's definitions, which the downgrade restores.
PROMOTE_WAITING_BEFORE = """
CREATE OR REPLACE FUNCTION promote_waiting(
    p_event_id uuid, p_available integer, p_changed_at timestamptz,
    OUT promoted_ids uuid[], OUT promoted_user_ids text[], OUT promoted_quantities integer[],
    OUT promoted_created_ats timestamptz[], OUT promoted_updated_ats timestamptz[], OUT promoted_tickets integer)
LANGUAGE plpgsql AS $$
DECLARE
    head record;
BEGIN
    promoted_ids := '{}';
    promoted_user_ids := '{}';
    promoted_quantities := '{}';
    promoted_created_ats := '{}';
    promoted_updated_ats := '{}';
    promoted_tickets := 0;
    LOOP
        -- The head (oldest waiting entry), confirmed only if it fits: the first that does not, stops.
        UPDATE bookings b SET status = 'confirmed', updated_at = p_changed_at
         WHERE b.event_id = p_event_id
           AND b.id = (SELECT w.id FROM bookings w
                        WHERE w.event_id = p_event_id AND w.status = 'waiting'
                        ORDER BY w.seq LIMIT 1)
           AND b.quantity <= p_available - promoted_tickets
        RETURNING b.id, b.user_id, b.quantity, b.created_at, b.updated_at INTO head;
        EXIT WHEN NOT FOUND;
        promoted_ids := promoted_ids || head.id;
        promoted_user_ids := promoted_user_ids || head.user_id;
        promoted_quantities := promoted_quantities || head.quantity;
        promoted_created_ats := promoted_created_ats || head.created_at;
        promoted_updated_ats := promoted_updated_ats || head.updated_at;
        promoted_tickets := promoted_tickets + head.quantity;
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

NUMBER_EVENTS = """
UPDATE events e SET seq = numbered.seq
  FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS seq FROM events) numbered
 WHERE e.id = numbered.id
"""
ORGANISER_KINDS = ("capacity_changed", "sales_closed", "sales_opened", "event_cancelled")
BOOKING_KINDS = ("booked", "waitlisted", "cancelled", "reduced", "promoted")
ORGANISER_FUNCTIONS = (
    "update_event(uuid, text, text, integer, integer, boolean)",
    "cancel_event(uuid, text)",
)
ORGANISER_ENTRIES = (
    "SELECT count(*) FROM booking_events WHERE kind IN ('capacity_changed', 'sales_closed', "
    "'sales_opened', 'event_cancelled')"
)


def _kinds(kinds) -> str:
    return "kind IN (" + ", ".join(f"'{kind}'" for kind in kinds) + ")"


LEDGER_CHECKS = {
    # An organiser's entry concerns the event; a booking's names the booking, its user and its tickets.
    "subject_known": f"CASE WHEN {_kinds(ORGANISER_KINDS)} THEN booking_id IS NULL AND user_id IS NULL "
    "AND quantity IS NULL ELSE booking_id IS NOT NULL AND user_id IS NOT NULL AND quantity IS NOT NULL END",
    "totals_with_capacity_change": "(kind = 'capacity_changed') = (total_tickets_from IS NOT NULL) "
    "AND (total_tickets_from IS NULL) = (total_tickets_to IS NULL)",
}


def upgrade() -> None:
    op.add_column("events", sa.Column("status", sa.Text, server_default=sa.text("'active'"), nullable=False))
    op.add_column("events", sa.Column("sales_open", sa.Boolean, server_default=sa.text("true"), nullable=False))
    op.create_check_constraint(op.f("ck_events_status_known"), "events", "status IN ('active', 'cancelled')")
    _add_event_seq()
    op.create_index(op.f("ix_events_seq"), "events", ["seq"])
    op.create_index(op.f("ix_events_status_seq"), "events", ["status", "seq"])
    op.create_index(op.f("ix_bookings_event_id_seq"), "bookings", ["event_id", "seq"])
    for column in ("booking_id", "user_id", "quantity"):
        op.alter_column("booking_events", column, nullable=True)
    op.add_column("booking_events", sa.Column("total_tickets_from", sa.Integer))
    op.add_column("booking_events", sa.Column("total_tickets_to", sa.Integer))
    _replace_kind_check(BOOKING_KINDS + ORGANISER_KINDS)
    for name, condition in LEDGER_CHECKS.items():
        op.create_check_constraint(op.f(f"ck_booking_events_{name}"), "booking_events", condition)
    create_or_replace(BOOK_TICKET, CANCEL_BOOKING, PROMOTE_WAITING, UPDATE_EVENT, CANCEL_EVENT)


def downgrade() -> None:
    entries = op.get_bind().execute(sa.text(ORGANISER_ENTRIES)).scalar_one()
    if entries:
        raise RuntimeError(
            f"cannot downgrade below 0009: the ledger holds {entries} organiser entries (capacity changes, sales "
            "closed or opened, events cancelled), which the schema before it cannot represent; nothing was changed."
        )
    drop(*ORGANISER_FUNCTIONS)
    create_or_replace(BOOK_TICKET_BEFORE, CANCEL_BOOKING_BEFORE, PROMOTE_WAITING_BEFORE)
    for name in LEDGER_CHECKS:
        op.drop_constraint(op.f(f"ck_booking_events_{name}"), "booking_events", type_="check")
    _replace_kind_check(BOOKING_KINDS)
    op.drop_column("booking_events", "total_tickets_to")
    op.drop_column("booking_events", "total_tickets_from")
    for column in ("quantity", "user_id", "booking_id"):
        op.alter_column("booking_events", column, nullable=False)
    op.drop_index(op.f("ix_bookings_event_id_seq"), "bookings")
    op.drop_index(op.f("ix_events_status_seq"), "events")
    op.drop_index(op.f("ix_events_seq"), "events")
    op.drop_column("events", "seq")
    op.drop_constraint(op.f("ck_events_status_known"), "events", type_="check")
    op.drop_column("events", "sales_open")
    op.drop_column("events", "status")


def _add_event_seq() -> None:
    """events.seq, an identity: existing events numbered in the order they were opened, new ones after them."""
    op.add_column("events", sa.Column("seq", sa.BigInteger))
    op.execute(NUMBER_EVENTS)
    op.alter_column("events", "seq", nullable=False)
    op.execute("ALTER TABLE events ALTER COLUMN seq ADD GENERATED ALWAYS AS IDENTITY")
    op.execute("SELECT setval(pg_get_serial_sequence('events', 'seq'), coalesce(max(seq), 0) + 1, false) FROM events")


def _replace_kind_check(kinds) -> None:
    op.drop_constraint(op.f("ck_booking_events_kind_known"), "booking_events", type_="check")
    op.create_check_constraint(op.f("ck_booking_events_kind_known"), "booking_events", _kinds(kinds))
