-- promote_waiting: the strict first-come-first-served rule, run under the event lock after every
-- release of tickets: confirm the head of the queue while its quantity fits in `p_available`; the
-- first that does not fit stops it (nobody overtakes the head, not even a smaller booking). The
-- promoted bookings are stamped `p_changed_at`, the caller's time after the lock, and get `p_status`
-- (promotion_terms.sql): `confirmed`; or `offered` (offer mode) or `held` (holds on) until `p_expires_at`,
-- their tickets taken for them meanwhile. The caller counts the tickets as taken whatever the status,
-- and writes the ledger entries.
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). It returns the promoted bookings, oldest first, as arrays, and the tickets
-- they took; it changes only their rows: the caller updates the event row once with the totals, so
-- the row's CHECKs hold at every statement, and appends the ledger entries. It reads the queue once,
-- along the partial index ix_bookings_waiting_queue, as far as the head that stops it, and updates
-- each promoted booking by its key: linear in the promotions, whatever the queue's length.
-- An event of several ticket types (`p_typed`, issue 26) is walked by promote_waiting_types.sql, which
-- may pass older entries; so the promotions it counts as from the head of the queue (`head_entries`,
-- `head_tickets`, for the event row's queue_promoted_*) are these, all of them, or none there.
-- `promoted_items` is NULL here: on an event of one type, a booking's quantity is of that type.

CREATE OR REPLACE FUNCTION promote_waiting(
    p_event_id uuid, p_available integer, p_changed_at timestamptz, p_status text, p_expires_at timestamptz,
    p_typed boolean,
    OUT promoted_ids uuid[], OUT promoted_user_ids text[], OUT promoted_quantities integer[],
    OUT promoted_created_ats timestamptz[], OUT promoted_updated_ats timestamptz[], OUT promoted_tickets integer,
    OUT promoted_items jsonb, OUT head_entries integer, OUT head_tickets integer)
LANGUAGE plpgsql AS $$
DECLARE
    head record;
    promoted record;
BEGIN
    IF p_typed THEN
        SELECT * INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats, promoted_updated_ats,
                      promoted_tickets, promoted_items
          FROM promote_waiting_types(p_event_id, p_available, p_changed_at, p_status, p_expires_at);
        head_entries := 0;
        head_tickets := 0;
        RETURN;
    END IF;
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
    head_entries := cardinality(promoted_ids);
    head_tickets := promoted_tickets;
END
$$;
