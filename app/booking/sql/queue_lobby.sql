-- queue_lobby: the draw's bulk step (issue 27; seat_lobby.sql calls it under the event's row lock, with the
-- event row `ev` as it stands, once the rule of the back of the queue (waits_at_back.sql) says that even the
-- smallest booking would wait): the lobby entries ranked after `p_after_rank` up to `p_to_rank` join
-- the back of the queue at once, in rank order, as book_ticket would have queued them one by one:
-- - each its place: the next ordinals, and the tickets before it (in each of its types' queues too);
-- - a new seq in rank order (the queue's order, ix_bookings_waiting_queue), from the bookings' own sequence;
-- - the event's (and its types') counters moved by their sums, the place trees grown past each power of
--   two the ordinals cross (a copy of the root, as book_ticket does one at a time);
-- - one `waitlisted` ledger entry each, with its rank, in rank order (each one's webhook booking.waitlisted).
-- A rank whose entry has left the lobby (cancelled) is passed over. It returns the number queued.
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). Every statement names the event (ev.id), so that on a table sharded by event_id
-- each one runs on one shard (docs/scaling.md).

CREATE OR REPLACE FUNCTION queue_lobby(ev events, p_after_rank integer, p_to_rank integer, p_request_id text)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    changed_at timestamptz := clock_timestamp();
    queued integer;
    tickets bigint;
    type_codes text[];  -- the types of the entries queued, and the tickets queued of each
    type_tickets bigint[];
    root bigint := 1;  -- the place trees' root before (a power of two at least queue_joined_entries)
    passed bigint;  -- a power of two that the ordinals pass
    booking_seq regclass := pg_get_serial_sequence('bookings', 'seq');
BEGIN
    WITH entries AS MATERIALIZED (
        SELECT r.event_id, b.id, r.rank, b.quantity, b.item_types, b.item_quantities,
               row_number() OVER by_rank AS n, sum(b.quantity) OVER by_rank - b.quantity AS tickets_earlier
          FROM lobby_ranks r
         CROSS JOIN LATERAL (SELECT * FROM bookings b  -- by its key, whatever the statistics say of the lobby
                              WHERE b.event_id = r.event_id AND b.id = r.booking_id AND b.status = 'lobby'
                             OFFSET 0) b
         WHERE r.event_id = ev.id AND r.rank > p_after_rank AND r.rank <= p_to_rank
        WINDOW by_rank AS (ORDER BY r.rank)
    ), seqs AS (  -- nextval called once per entry, one after the other: increasing with n
        SELECT array_agg(nextval(booking_seq) ORDER BY g) AS seq
          FROM generate_series(1, (SELECT count(*) FROM entries)) AS g
    ), item_places AS (
        SELECT i.id, array_agg(t.queue_joined_tickets + i.earlier ORDER BY i.k) AS before
          FROM (SELECT e.id, item.code, item.k,
                       coalesce(sum(item.q) OVER (PARTITION BY item.code ORDER BY e.rank
                                                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS earlier
                  FROM entries e, unnest(e.item_types, e.item_quantities) WITH ORDINALITY AS item (code, q, k)) i
          JOIN ticket_types t ON t.event_id = ev.id AND t.code = i.code
         GROUP BY i.id
    ), moved AS (
        UPDATE bookings b
           SET status = 'waiting', seq = s.seq[e.n], queue_ordinal = ev.queue_joined_entries + e.n,
               queue_tickets_before = ev.queue_joined_tickets + e.tickets_earlier, item_tickets_before = p.before,
               updated_at = changed_at, lobby_rank = e.rank
          FROM entries e CROSS JOIN seqs s LEFT JOIN item_places p ON p.id = e.id
         -- The entries' own event_id, not ev.id: on a lobby just filled the statistics may know none of the
         -- event's bookings, and would have the planner scan them all for each entry.
         WHERE b.event_id = e.event_id AND b.id = e.id
        RETURNING b.quantity, b.item_types, b.item_quantities
    ), type_sums AS (
        SELECT item.code, sum(item.q) AS tickets
          FROM moved m, unnest(m.item_types, m.item_quantities) AS item (code, q)
         GROUP BY item.code
    )
    SELECT count(*), coalesce(sum(m.quantity), 0),
           (SELECT array_agg(t.code ORDER BY t.code) FROM type_sums t),
           (SELECT array_agg(t.tickets ORDER BY t.code) FROM type_sums t)
      INTO queued, tickets, type_codes, type_tickets
      FROM moved m;
    UPDATE events e
       SET waiting_count = e.waiting_count + queued, waiting_tickets = e.waiting_tickets + tickets,
           queue_joined_entries = e.queue_joined_entries + queued,
           queue_joined_tickets = e.queue_joined_tickets + tickets, lobby_count = e.lobby_count - queued,
           updated_at = changed_at
     WHERE e.id = ev.id;
    UPDATE ticket_types t  -- on an event of one type the entries have no items: nothing to update
       SET waiting_tickets = t.waiting_tickets + q.tickets, queue_joined_tickets = t.queue_joined_tickets + q.tickets
      FROM unnest(type_codes, type_tickets) AS q (code, tickets)
     WHERE t.event_id = ev.id AND t.code = q.code;
    WHILE root < ev.queue_joined_entries LOOP
        root := root * 2;
    END LOOP;
    -- The ordinals outgrow the trees at each power of two they pass (book_ticket grows them one entry at a
    -- time): each new root starts as a copy of the old one, which no departure has changed meanwhile.
    passed := root;
    WHILE ev.queue_joined_entries > 0 AND passed < ev.queue_joined_entries + queued LOOP
        passed := passed * 2;
        INSERT INTO queue_departures (event_id, ticket_type, node, entries, tickets)
        SELECT ev.id, d.ticket_type, passed, d.entries, d.tickets
          FROM queue_departures d
         WHERE d.event_id = ev.id AND d.node = root;
    END LOOP;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at,
                                item_types, item_quantities, lobby_rank)
    SELECT ev.id, b.id, b.user_id, 'waitlisted', p_request_id, b.quantity, changed_at, b.item_types,
           b.item_quantities, r.rank
      FROM lobby_ranks r
     CROSS JOIN LATERAL (SELECT * FROM bookings b
                          WHERE b.event_id = r.event_id AND b.id = r.booking_id AND b.lobby_rank = r.rank
                         OFFSET 0) b
     WHERE r.event_id = ev.id AND r.rank > p_after_rank AND r.rank <= p_to_rank
     ORDER BY r.rank;
    RETURN queued;
END
$$;
