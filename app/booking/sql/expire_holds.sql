-- expire_holds: the hold sweeper's step for one event (issue 25): every hold past hold_expires_at, by the
-- database's clock, is cancelled with cancel_reason `hold_expired` and a `hold_expired` ledger entry
-- (booking.cancelled), and the tickets it held go by promote_waiting's strict FIFO rule (held again in auto
-- mode with holds on, offered in offer mode: promotion_terms.sql) in the same transaction, under the one
-- request id (pass_on_expired.sql, shared with expire_offers).
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
