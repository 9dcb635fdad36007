-- expire_holds: the hold sweeper's step for one event (issue 25): every hold past hold_expires_at, by the
-- database's clock, is cancelled with cancel_reason `hold_expired` and a `hold_expired` ledger entry
-- (booking.cancelled), and the tickets it held go by promote_waiting's strict FIFO rule (held again in auto
-- mode with holds on, offered in offer mode: promotion_terms.sql) in the same transaction, under the one
-- request id. The ledger entries are written after the event row, so that each one's webhook message
-- reports the event as the sweep left it.
--
-- It locks and claims as expire_offers does, for the same reasons (expire_offers.sql): it waits its turn
-- for the event's row lock, at most its lock_timeout ('busy' after that, swept at the next pass), then
-- claims the due holds with SKIP LOCKED; the event first and the bookings after, as every writer. Several
-- sweepers may run at once: the second to get an event's lock finds the holds the first expired already
-- cancelled. A confirm that waited for the lock behind it finds the hold expired ('hold_expired'), one
-- that came first confirmed it: exactly one of them wins.
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). Every statement names the event (p_event_id), so that on a table sharded by
-- event_id each one runs on one shard (docs/scaling.md). It returns one row: the outcome ('ok',
-- 'busy' or 'event_not_found'), how many holds expired and how many bookings the freed tickets promoted.

CREATE OR REPLACE FUNCTION expire_holds(p_event_id uuid, p_request_id text)
RETURNS TABLE (outcome text, expired_holds integer, promoted_bookings integer)
LANGUAGE plpgsql
SET lock_timeout = '2s'
AS $$
DECLARE
    ev events%ROWTYPE;
    released integer;  -- the tickets the expired holds held
    promoted_status text;  -- what the freed tickets make of the entries they reach
    deadline timestamptz;  -- of the offers or holds made now
    expired_ids uuid[];  -- the holds expired now, oldest first, for the ledger
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
           count(*), coalesce(sum(x.quantity), 0)
      INTO expired_ids, expired_user_ids, expired_quantities, expired_holds, released
      FROM expired x;
    IF expired_holds = 0 THEN
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT * INTO promoted_status, deadline
      FROM promotion_terms(ev.promotion, ev.offer_ttl_seconds, ev.hold_ttl_seconds, changed_at);
    SELECT * INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats,
                  promoted_updated_ats, promoted_tickets
      FROM promote_waiting(p_event_id, ev.available_tickets + released, changed_at, promoted_status, deadline);
    -- The event row first, then the ledger: the webhook trigger snapshots the event at each entry.
    UPDATE events e
       SET available_tickets = e.available_tickets + released - promoted_tickets,
           waiting_count = e.waiting_count - cardinality(promoted_ids),
           waiting_tickets = e.waiting_tickets - promoted_tickets,
           queue_promoted_entries = e.queue_promoted_entries + cardinality(promoted_ids),
           queue_promoted_tickets = e.queue_promoted_tickets + promoted_tickets,
           held_tickets = e.held_tickets - released + CASE WHEN promoted_status = 'held' THEN promoted_tickets ELSE 0 END,
           updated_at = changed_at
     WHERE e.id = p_event_id;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
    SELECT p_event_id, x.id, x.user_id, 'hold_expired', p_request_id, x.quantity, changed_at
      FROM unnest(expired_ids, expired_user_ids, expired_quantities) WITH ORDINALITY AS x (id, user_id, quantity, step)
     ORDER BY x.step;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
    SELECT p_event_id, p.id, p.user_id, CASE promoted_status WHEN 'confirmed' THEN 'promoted' ELSE promoted_status END,
           p_request_id, p.quantity, changed_at
      FROM unnest(promoted_ids, promoted_user_ids, promoted_quantities) WITH ORDINALITY AS p (id, user_id, quantity, step)
     ORDER BY p.step;
    promoted_bookings := cardinality(promoted_ids);
    RETURN NEXT;
END
$$;
