-- The best single-statement form of one cancellation: cancel_booking() in autocommit mode. The
-- users cancelled, c-<client>-<c>, hold confirmed tickets booked before the run (bench/database.py),
-- so each cancel hands its ticket to the oldest waiter.
-- Variables (pgbench -D): event_prefix, event_count, c=0.
\set c :c + 1
\set k random(1, :event_count)
SELECT * FROM cancel_booking((:event_prefix || lpad(:k::text, 12, '0'))::uuid, 'c-' || :client_id || '-' || :c, 'pgbench');
