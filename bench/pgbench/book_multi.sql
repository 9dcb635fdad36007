-- One booking as the statements of book_ticket() sent one by one (6 round trips): the naive design
-- whose event lock is held across three client round trips. Same statements, same locks.
-- Variables (pgbench -D): event_prefix, event_count, n=0. Users are pg-<client>-<n>, all distinct.
\set n :n + 1
\set k random(1, :event_count)
BEGIN;
SELECT id AS event_id, available_tickets
  FROM events WHERE id = (:event_prefix || lpad(:k::text, 12, '0'))::uuid
   FOR UPDATE \gset
INSERT INTO bookings AS b (event_id, user_id, status)
VALUES (:event_id, 'pg-' || :client_id || '-' || :n,
        CASE WHEN :available_tickets > 0 THEN 'confirmed' ELSE 'waiting' END)
ON CONFLICT (event_id, user_id) WHERE status <> 'cancelled' DO NOTHING
RETURNING b.id, b.status AS booking_status, b.created_at, b.updated_at \gset
UPDATE events
   SET available_tickets = available_tickets - (:booking_status = 'confirmed')::int,
       waiting_count = waiting_count + (:booking_status = 'waiting')::int,
       updated_at = now()
 WHERE id = :event_id;
INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id)
VALUES (:event_id, :id, 'pg-' || :client_id || '-' || :n,
        CASE WHEN :booking_status = 'confirmed' THEN 'booked' ELSE 'waitlisted' END, 'pgbench');
COMMIT;
