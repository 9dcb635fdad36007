-- One cancellation as the statements of cancel_booking() sent one by one, on the branch churn
-- always takes (a confirmed booking is cancelled, the oldest waiter is promoted). Each statement names
-- the event, as cancel_booking's do since migration 0004 (bookings' key is (event_id, id)).
-- Variables (pgbench -D): event_prefix, event_count, c=0.
\set c :c + 1
\set k random(1, :event_count)
BEGIN;
SELECT id AS event_id
  FROM events WHERE id = (:event_prefix || lpad(:k::text, 12, '0'))::uuid
   FOR UPDATE \gset
SELECT b.id AS booking_id, b.status AS was_status
  FROM bookings b
 WHERE b.event_id = :event_id AND b.user_id = 'c-' || :client_id || '-' || :c AND b.status <> 'cancelled' \gset
UPDATE bookings b SET status = 'cancelled', updated_at = now()
 WHERE b.event_id = :event_id AND b.id = :booking_id
RETURNING b.created_at, b.updated_at;
UPDATE bookings b SET status = 'confirmed', updated_at = now()
 WHERE b.event_id = :event_id AND b.id = (SELECT w.id FROM bookings w
                WHERE w.event_id = :event_id AND w.status = 'waiting'
                ORDER BY w.seq LIMIT 1)
RETURNING b.id AS promoted_id, b.user_id AS promoted_user_id, b.created_at, b.updated_at \gset
UPDATE events SET waiting_count = waiting_count - 1, updated_at = now() WHERE id = :event_id;
INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id)
VALUES (:event_id, :booking_id, 'c-' || :client_id || '-' || :c, 'cancelled', 'pgbench'),
       (:event_id, :promoted_id, :promoted_user_id, 'promoted', 'pgbench');
COMMIT;
