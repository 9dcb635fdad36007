-- hot-hold as the naive design sends it: the statements of book_ticket() one by one (as book_multi.sql,
-- the booking held for the event's hold_ttl_seconds), then those of confirm_hold() one by one, each
-- transaction holding the event lock across its client round trips. Same statements, same locks, the
-- same counters (held_tickets) and ledger entries (held, paid). A transaction of this script is one
-- booking, confirmed. Left out, as in book_multi.sql: the copy of the queue tree's root.
-- Variables (pgbench -D): event_prefix, event_count, n=0. Users are pg-<client>-<n>, all distinct.
\set n :n + 1
\set k random(1, :event_count)
\set q random(1, 4)
BEGIN;
SELECT id AS event_id, (waiting_count > 0 OR :q > available_tickets) AS waits,
       queue_joined_entries, queue_joined_tickets, hold_ttl_seconds
  FROM events WHERE id = (:event_prefix || lpad(:k::text, 12, '0'))::uuid
   FOR UPDATE \gset
INSERT INTO bookings AS b (event_id, user_id, status, quantity, queue_ordinal, queue_tickets_before, hold_expires_at)
VALUES (:event_id, 'pg-' || :client_id || '-' || :n, CASE WHEN :waits::boolean THEN 'waiting' ELSE 'held' END,
        :q, CASE WHEN :waits::boolean THEN :queue_joined_entries::bigint + 1 END,
        CASE WHEN :waits::boolean THEN :queue_joined_tickets::bigint END,
        CASE WHEN NOT :waits::boolean THEN clock_timestamp() + make_interval(secs => :hold_ttl_seconds) END)
ON CONFLICT (event_id, user_id) WHERE status <> 'cancelled' DO NOTHING
RETURNING b.id, b.status AS booking_status \gset
UPDATE events
   SET available_tickets = available_tickets - CASE WHEN :waits::boolean THEN 0 ELSE :q END,
       held_tickets = held_tickets + CASE WHEN :waits::boolean THEN 0 ELSE :q END,
       waiting_count = waiting_count + (:waits)::boolean::int,
       waiting_tickets = waiting_tickets + CASE WHEN :waits::boolean THEN :q ELSE 0 END,
       queue_joined_entries = queue_joined_entries + (:waits)::boolean::int,
       queue_joined_tickets = queue_joined_tickets + CASE WHEN :waits::boolean THEN :q ELSE 0 END,
       updated_at = now()
 WHERE id = :event_id;
INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity)
VALUES (:event_id, :id, 'pg-' || :client_id || '-' || :n,
        CASE WHEN :booking_status = 'held' THEN 'held' ELSE 'waitlisted' END, 'pgbench', :q);
COMMIT;
BEGIN;
SELECT 1 FROM events WHERE id = :event_id FOR UPDATE;
SELECT (status = 'held' AND hold_expires_at > clock_timestamp()) AS payable
  FROM bookings WHERE event_id = :event_id AND id = :id \gset
UPDATE bookings SET status = 'confirmed', payment_reference = 'pay-' || :client_id || '-' || :n, updated_at = now()
 WHERE event_id = :event_id AND id = :id AND :payable::boolean;
UPDATE events SET held_tickets = held_tickets - CASE WHEN :payable::boolean THEN :q ELSE 0 END, updated_at = now()
 WHERE id = :event_id;
INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity)
SELECT :event_id, :id, 'pg-' || :client_id || '-' || :n, 'paid', 'pgbench', :q WHERE :payable::boolean;
COMMIT;
