-- draw_lobby: one step of an event's draw (issue 27), run by the background process's lobby-draw unit
-- (app/booking/lobby.py) in autocommit, again and again until it says the draw is finished. Each step is a
-- transaction of its own under the event's row lock, so reads go on beside it and bookings and cancels
-- wait for one step at most:
--   1. the first step ranks the lobby (rank_lobby.sql): every rank fixed, and committed, before anyone is
--      booked;
--   2. each next step books the next ranks (seat_lobby.sql): up to `p_slice` one by one, book_ticket's
--      ordinary decision for each, while tickets remain for them; once even the smallest booking would wait,
--      up to `p_queue_slice` (default `p_slice`) at once at the back of the queue; and it moves the event's
--      cursor (lobby_seated) past them;
--   3. the step that reaches the last rank given (late arrivals keep adding ranks meanwhile) marks the draw
--      done: drawn_at, and a `lobby_drawn` ledger entry (the webhook event.sales_opened, with the counts).
-- Every step reads where the draw stands from the event row under the lock, so several processes may
-- draw at once (each step follows the other's), and a process killed mid-step leaves that step rolled
-- back whole: the next one, by any process, starts where the last committed step stopped. Nobody is
-- ranked twice (one ranking per event, all or nothing), drawn twice or forgotten (the cursor only moves
-- in the step that books the ranks it passes).
--
-- It waits its turn for the lock up to its lock_timeout ('busy': the next pass tries again), and does
-- nothing ('not_due') for an event that is not drawing: no opening, not yet open, drawn already, called
-- off, or its sales closed (closed sales pause the draw: a booking of the lobby is a sale).
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). Every statement names the event, so that on a table sharded by event_id each
-- one runs on one shard (docs/scaling.md). It returns one row: the outcome ('ok', 'busy', 'not_due',
-- 'event_not_found'), the entries ranked by this step, those it booked, and whether the draw is done.

CREATE OR REPLACE FUNCTION draw_lobby(p_event_id uuid, p_request_id text, p_slice integer,
                                      p_queue_slice integer DEFAULT NULL)
RETURNS TABLE (outcome text, ranked integer, seated integer, finished boolean)
LANGUAGE plpgsql
SET lock_timeout = '2s'
AS $$
DECLARE
    ev events%ROWTYPE;
    changed_at timestamptz;
BEGIN
    ranked := 0;
    seated := 0;
    BEGIN
        SELECT * INTO ev FROM events e WHERE e.id = p_event_id FOR UPDATE;
    EXCEPTION WHEN lock_not_available THEN
        outcome := 'busy';
        finished := false;
        RETURN NEXT;
        RETURN;
    END;
    IF NOT FOUND THEN
        outcome := 'event_not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    changed_at := clock_timestamp();
    finished := ev.drawn_at IS NOT NULL;
    IF finished OR ev.sales_open_at IS NULL OR ev.sales_open_at > changed_at OR ev.status <> 'active'
       OR NOT ev.sales_open THEN
        outcome := 'not_due';
        RETURN NEXT;
        RETURN;
    END IF;
    outcome := 'ok';
    IF ev.draw_started_at IS NULL THEN
        ranked := rank_lobby(ev, changed_at);
    ELSE
        SELECT * INTO seated, finished FROM seat_lobby(ev, p_request_id, p_slice, coalesce(p_queue_slice, p_slice));
    END IF;
    RETURN NEXT;
END
$$;
