-- One booking exactly as the service makes it: one transaction around one statement, book_ticket()
-- (migrations/versions/0002: the rules plus the ledger row), with the request id it records.
-- Variables (pgbench -D): event_prefix, event_count, n=0. Users are pg-<client>-<n>, all distinct.
\set n :n + 1
\set k random(1, :event_count)
BEGIN;
SELECT * FROM book_ticket((:event_prefix || lpad(:k::text, 12, '0'))::uuid, 'pg-' || :client_id || '-' || :n, 'pgbench');
COMMIT;
