"""expire_offers and cancel_event also write the event row before the ledger, as 0013 made the others do.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01

The webhook trigger snapshots the event row at each ledger entry (0013). The sweeper wrote its
`expired` and `offered` entries before updating the event, and calling an event off wrote its entries
before marking it cancelled, so booking.cancelled / booking.offered reported the event as it was before
the change (the sweep's waiting count, a called-off event still active). Each now updates the event row
first; what they write and return is unchanged.
"""

from app.database.functions import create_or_replace

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# The definitions this revision installs, frozen (app/database/functions.py); each is its
# app/booking/sql/<function>.sql file as of this revision, and *_BEFORE as of 0013.
EXPIRE_OFFERS = """
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


def upgrade() -> None:
    create_or_replace(EXPIRE_OFFERS, CANCEL_EVENT)


def downgrade() -> None:
    create_or_replace(EXPIRE_OFFERS_BEFORE, CANCEL_EVENT_BEFORE)
