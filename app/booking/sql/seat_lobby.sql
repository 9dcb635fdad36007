-- seat_lobby: a step of the draw after the ranking (issue 27; draw_lobby.sql calls it under the event's row
-- lock, with the event row `ev`). The ranks after the cursor (ev.lobby_seated) are booked in rank order:
-- - while the rule of the back of the queue (waits_at_back.sql) would let even the smallest booking have
--   its tickets, up to `p_slice` of them one by one, each by book_ticket with its items and its rank, the
--   ordinary rules' one decision (confirmed, or held with holds on, while tickets remain and the rule lets
--   it pass; else waiting);
-- - once it says no, every entry would wait whatever it wants, so the rest of the slice joins the back of
--   the queue at once, in rank order (queue_lobby.sql), as book_ticket would have queued them; and when it
--   says no from the step's start, up to `p_queue_slice` entries do.
-- A rank whose entry has left the lobby (cancelled) is passed over. The cursor moves past the step; once it
-- reaches the last rank given, the draw is done: drawn_at is set, after which book_ticket books as on an
-- event without a lobby, and the ledger gets `lobby_drawn` (the webhook event.sales_opened, the event's
-- counts as the draw left them).
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). Every statement names the event (ev.id), so that on a table sharded by event_id
-- each one runs on one shard (docs/scaling.md). It returns the entries booked and whether the draw is done.

CREATE OR REPLACE FUNCTION seat_lobby(ev events, p_request_id text, p_slice integer, p_queue_slice integer,
                                      OUT seated integer, OUT finished boolean)
LANGUAGE plpgsql AS $$
DECLARE
    entry record;
    cursor_to integer := least(ev.lobby_seated + p_slice, ev.lobby_ranked);
    now_ev events%ROWTYPE := ev;  -- the event as the last booking left it
    booked text;  -- book_ticket's outcome for an entry
    changed_at timestamptz;
BEGIN
    seated := 0;
    IF waits_at_back(ev, 1, false, true) THEN
        cursor_to := least(ev.lobby_seated + p_queue_slice, ev.lobby_ranked);
        seated := queue_lobby(ev, ev.lobby_seated, cursor_to, p_request_id);
    ELSE
        FOR entry IN SELECT r.rank, b.user_id, b.quantity, b.item_types, b.item_quantities
                       FROM lobby_ranks r
                      CROSS JOIN LATERAL (SELECT * FROM bookings b  -- by its key, whatever the statistics say
                                           WHERE b.event_id = r.event_id AND b.id = r.booking_id AND b.status = 'lobby'
                                          OFFSET 0) b
                      WHERE r.event_id = ev.id AND r.rank > ev.lobby_seated AND r.rank <= cursor_to
                      ORDER BY r.rank LOOP
            IF waits_at_back(now_ev, 1, false, true) THEN
                seated := seated + queue_lobby(now_ev, entry.rank - 1, cursor_to, p_request_id);
                EXIT;
            END IF;
            SELECT b.outcome INTO booked
              FROM book_ticket(ev.id, entry.user_id, p_request_id, entry.quantity, entry.item_types,
                               entry.item_quantities, entry.rank::integer) b;
            IF booked <> 'ok' THEN
                -- Never expected: the draw checked the event, and the entry's items were checked when it
                -- joined. The step fails whole, and the draw stops here, rather than pass the entry over.
                RAISE EXCEPTION 'the draw could not book the entry ranked %: %', entry.rank, booked;
            END IF;
            seated := seated + 1;
            SELECT * INTO now_ev FROM events e WHERE e.id = ev.id;
        END LOOP;
    END IF;
    finished := cursor_to = ev.lobby_ranked;
    changed_at := clock_timestamp();
    -- The event row first, then the ledger: the webhook trigger snapshots the event at each entry.
    UPDATE events e
       SET lobby_seated = cursor_to, drawn_at = CASE WHEN finished THEN changed_at END,
           updated_at = CASE WHEN finished THEN changed_at ELSE e.updated_at END
     WHERE e.id = ev.id;
    IF finished THEN
        INSERT INTO booking_events (event_id, kind, request_id, created_at)
        VALUES (ev.id, 'lobby_drawn', p_request_id, changed_at);
    END IF;
END
$$;
