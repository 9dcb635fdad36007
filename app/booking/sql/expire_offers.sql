-- expire_offers: the sweeper's step for one event (issue 16): every offer past offer_expires_at, by
-- the database's clock, is cancelled with cancel_reason `expired` and an `expired` ledger entry, and
-- the tickets it held go by promote_waiting's strict FIFO rule, offered again (or, if the event is now
-- in auto mode, confirmed, or held with holds on), in the same transaction, under the one request id
-- (pass_on_expired.sql, shared with the hold sweeper's expire_holds).
--
-- The event row is locked as every writer locks it, waiting its turn (FOR UPDATE): on a hot event the
-- row is nearly always held by a booking, and a sweeper that skipped a locked row (SKIP LOCKED) left
-- offers held for seconds past their time (docs/performance.md, "Offers on a hot event"). The wait is
-- bounded by the function's lock_timeout: an event held longer (a call-off of a large event) is 'busy'
-- and swept at the next pass, so one such event never stalls the sweep of the others. The expired
-- offers are then claimed with SKIP LOCKED: under the event lock nobody else should hold them, and a
-- row someone does hold is left to the next pass rather than waited for with the event locked. The
-- offers are not claimed before the event: every writer takes the event first and the booking after,
-- and a sweeper taking them the other way round would deadlock with an accept of the same offer.
-- Several dispatchers may run at once: the second to get an event's lock finds the offers the first
-- expired already cancelled; run twice, it changes nothing: it is idempotent. An accept that waited
-- for the lock behind it finds the offer expired ('offer_expired'), one that came first confirmed it:
-- exactly one of them wins.
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). Every statement names the event (p_event_id), so that on a table sharded by
-- event_id each one runs on one shard (docs/scaling.md). It returns one row: the outcome ('ok',
-- 'busy' or 'event_not_found'), how many offers expired and how many bookings the freed tickets promoted.

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
