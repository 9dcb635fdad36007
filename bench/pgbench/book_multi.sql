-- One booking as the statements of book_ticket() sent one by one (6 round trips): the naive design
-- whose event lock is held across three client round trips. Same statements, same locks, the same
-- rule for 1..4 tickets (all or none; nobody overtakes a waiting entry) and the same queue counters.
-- Left out: the copy of the queue tree's root that book_ticket makes when the entries ever queued
-- reach a power of two; it matters only once an entry leaves from the middle, which no pgbench
-- scenario does.
-- Variables (pgbench -D): event_prefix, event_count, n=0. Users are pg-<client>-<n>, all distinct.
\set n :n + 1
\set k random(1, :event_count)
\set q random(1, 4)
BEGIN;
SELECT id AS event_id, (waiting_count > 0 OR :q > available_tickets) AS waits,
       queue_joined_entries, queue_joined_tickets
  FROM events WHERE id = (:event_prefix || lpad(:k::text, 12, '0'))::uuid
   FOR UPDATE \gset
INSERT INTO bookings AS b (event_id, user_id, status, quantity, queue_ordinal, queue_tickets_before)
VALUES (:event_id, 'pg-' || :client_id || '-' || :n, CASE WHEN :waits::boolean THEN 'waiting' ELSE 'confirmed' END,
        :q, CASE WHEN :waits::boolean THEN :queue_joined_entries::bigint + 1 END,
        CASE WHEN :waits::boolean THEN :queue_joined_tickets::bigint END)
ON CONFLICT (event_id, user_id) WHERE status <> 'cancelled' DO NOTHING
RETURNING b.id, b.status AS booking_status, b.created_at, b.updated_at \gset
UPDATE events
   SET available_tickets = available_tickets - CASE WHEN :waits::boolean THEN 0 ELSE :q END,
       waiting_count = waiting_count + (:waits)::boolean::int,
       waiting_tickets = waiting_tickets + CASE WHEN :waits::boolean THEN :q ELSE 0 END,
       queue_joined_entries = queue_joined_entries + (:waits)::boolean::int,
       queue_joined_tickets = queue_joined_tickets + CASE WHEN :waits::boolean THEN :q ELSE 0 END,
       updated_at = now()
 WHERE id = :event_id;
INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity)
VALUES (:event_id, :id, 'pg-' || :client_id || '-' || :n,
        CASE WHEN :booking_status = 'confirmed' THEN 'booked' ELSE 'waitlisted' END, 'pgbench', :q);
COMMIT;
