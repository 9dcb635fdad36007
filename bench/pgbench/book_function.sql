-- The best single-statement form of one booking: book_ticket() (app/booking/sql/book_ticket.sql: the
-- rules plus the ledger row) in autocommit mode, so the server takes the lock, books and commits in one
-- round trip. The service sends the same for a batch of one (book_many, app/booking/services.py).
-- Each booking wants 1..4 tickets, as the wrk scripts' do (bench/wrk/common.lua).
-- Variables (pgbench -D): event_prefix, event_count, n=0. Users are pg-<client>-<n>, all distinct.
\set n :n + 1
\set k random(1, :event_count)
\set q random(1, 4)
SELECT * FROM book_ticket((:event_prefix || lpad(:k::text, 12, '0'))::uuid, 'pg-' || :client_id || '-' || :n, 'pgbench', :q);
