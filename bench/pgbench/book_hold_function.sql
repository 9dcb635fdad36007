-- hot-hold: one booking held (the event's hold_ttl_seconds is set) and, right after, its payment's
-- confirm: book_ticket() then confirm_hold() (app/booking/sql/), each in autocommit mode, as the service
-- sends them. A transaction of this script is one booking, confirmed.
-- Variables (pgbench -D): event_prefix, event_count, n=0. Users are pg-<client>-<n>, all distinct.
\set n :n + 1
\set k random(1, :event_count)
\set q random(1, 4)
SELECT * FROM book_ticket((:event_prefix || lpad(:k::text, 12, '0'))::uuid, 'pg-' || :client_id || '-' || :n, 'pgbench', :q);
SELECT * FROM confirm_hold((:event_prefix || lpad(:k::text, 12, '0'))::uuid, 'pg-' || :client_id || '-' || :n, 'pgbench',
                           'pay-' || :client_id || '-' || :n);
