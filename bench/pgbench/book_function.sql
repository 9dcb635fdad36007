-- The best single-statement form of one booking: book_ticket() (migrations/versions/0002: the rules
-- plus the ledger row) in autocommit mode, so the server takes the lock, books and commits in one
-- round trip. The service sends the same for a batch of one (book_many, app/services.py).
-- Variables (pgbench -D): event_prefix, event_count, n=0. Users are pg-<client>-<n>, all distinct.
\set n :n + 1
\set k random(1, :event_count)
SELECT * FROM book_ticket((:event_prefix || lpad(:k::text, 12, '0'))::uuid, 'pg-' || :client_id || '-' || :n, 'pgbench');
