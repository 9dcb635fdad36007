-- rank_lobby: the draw's first step (issue 27; draw_lobby.sql calls it under the event's row lock, with the
-- event row `ev` and the time the lock was got): every entry in the lobby gets its rank, 1, 2, …, in
-- lobby_ranks, in one statement, so that a crash before its commit leaves no rank at all and the next step
-- draws afresh. The entries that joined before sales_open_at come first, in a uniformly random order:
-- sorted by a key from gen_random_uuid(), 122 bits from PostgreSQL's pg_strong_random (OpenSSL's CSPRNG),
-- independent for each entry, so every order is equally likely (two equal keys, the only bias, have a
-- chance below n²/2¹²³). The entries that joined at or after sales_open_at, before the draw started, follow
-- in arrival order; later ones are ranked as they arrive (join_lobby.sql). It returns the number ranked.
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). Every statement names the event (ev.id), so that on a table sharded by event_id
-- each one runs on one shard (docs/scaling.md).

CREATE OR REPLACE FUNCTION rank_lobby(ev events, p_changed_at timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    ranked integer;
BEGIN
    INSERT INTO lobby_ranks (event_id, rank, booking_id)
    SELECT ev.id, row_number() OVER (ORDER BY b.created_at >= ev.sales_open_at,
                                              CASE WHEN b.created_at < ev.sales_open_at THEN gen_random_uuid() END,
                                              b.seq), b.id
      FROM bookings b
     WHERE b.event_id = ev.id AND b.status = 'lobby';
    GET DIAGNOSTICS ranked = ROW_COUNT;
    UPDATE events e
       SET draw_started_at = p_changed_at, lobby_ranked = ranked,
           draw_entries = (SELECT count(*) FROM bookings b
                            WHERE b.event_id = ev.id AND b.status = 'lobby' AND b.created_at < ev.sales_open_at)
     WHERE e.id = ev.id;
    RETURN ranked;
END
$$;
