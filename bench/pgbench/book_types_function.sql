-- hot-types: one booking of 1..3 items as the service sends it, book_ticket() with the items' codes and
-- quantities (app/booking/sql/book_ticket.sql: the walk's rule for a new booking, the types' counters,
-- the ledger row) in autocommit mode. The items are drawn as bench/wrk/book_types.lua draws them: that
-- many distinct types, starting at one drawn at random, 1..2 tickets of each; the codes are bench/run.py's
-- HOT_TYPES, by position.
-- Variables (pgbench -D): event_prefix, event_count, n=0. Users are pg-<client>-<n>, all distinct.
\set n :n + 1
\set k random(1, :event_count)
\set items random(1, 3)
\set first random(0, 2)
\set q1 random(1, 2)
\set q2 random(1, 2)
\set q3 random(1, 2)
SELECT * FROM book_ticket((:event_prefix || lpad(:k::text, 12, '0'))::uuid, 'pg-' || :client_id || '-' || :n, 'pgbench', NULL,
                          ARRAY(SELECT (ARRAY['stalls', 'circle', 'box'])[(:first + j) % 3 + 1]
                                  FROM generate_series(0, :items - 1) AS j ORDER BY j),
                          ARRAY(SELECT (ARRAY[:q1, :q2, :q3]::int[])[j + 1] FROM generate_series(0, :items - 1) AS j ORDER BY j));
