-- One booking as the service makes it: one statement, book_ticket() (migrations/versions/0001),
-- in autocommit, so the event lock is released when the statement's COMMIT is durable.
-- Variables (pgbench -D): event_prefix, event_count, n=0. Users are pg-<client>-<n>, all distinct.
\set n :n + 1
\set k random(1, :event_count)
SELECT * FROM book_ticket((:event_prefix || lpad(:k::text, 12, '0'))::uuid, 'pg-' || :client_id || '-' || :n);
