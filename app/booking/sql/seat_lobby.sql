-- seat_lobby: a step of the draw after the ranking (issue 27; draw_lobby.sql calls it under the event's row
-- lock, with the event row `ev`): the next `p_slice` ranks after the cursor (ev.lobby_seated) are booked in
-- rank order, each by book_ticket with its items and its rank, the ordinary rules' one decision (confirmed,
-- or held with holds on, while tickets remain and the rule lets it pass; else waiting); a rank whose entry has left the lobby
-- (cancelled) is passed over. The cursor moves past the slice; once it reaches the last rank given, the draw
-- is done: drawn_at is set, after which book_ticket books as on an event without a lobby, and the ledger
-- gets `lobby_drawn` (the webhook event.sales_opened, the event's counts as the draw left them).
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). Every statement names the event (ev.id), so that on a table sharded by event_id
-- each one runs on one shard (docs/scaling.md). It returns the entries booked and whether the draw is done.

CREATE OR REPLACE FUNCTION seat_lobby(ev events, p_request_id text, p_slice integer,
                                      OUT seated integer, OUT finished boolean)
LANGUAGE plpgsql AS $$
DECLARE
    entry record;
    cursor_to integer := least(ev.lobby_seated + p_slice, ev.lobby_ranked);
    changed_at timestamptz;
BEGIN
    seated := 0;
    FOR entry IN SELECT r.rank, b.user_id, b.quantity, b.item_types, b.item_quantities
                   FROM lobby_ranks r
                   JOIN bookings b ON b.event_id = r.event_id AND b.id = r.booking_id
                  WHERE r.event_id = ev.id AND r.rank > ev.lobby_seated AND r.rank <= cursor_to
                    AND b.status = 'lobby'
                  ORDER BY r.rank LOOP
        PERFORM book_ticket(ev.id, entry.user_id, p_request_id, entry.quantity, entry.item_types,
                            entry.item_quantities, entry.rank::integer);
        seated := seated + 1;
    END LOOP;
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
