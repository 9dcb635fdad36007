-- One cancellation as the statements of cancel_booking() sent one by one (7 round trips), on the
-- branch churn always takes: a confirmed booking is cancelled, and the freed tickets go to the head of
-- the queue by the strict FIFO rule (the longest run of entries from the head whose tickets fit, one
-- statement with its ledger rows). Each statement names the event, as cancel_booking's do since
-- migration 0004 (bookings' key is (event_id, id)).
-- Variables (pgbench -D): event_prefix, event_count, c=0.
\set c :c + 1
\set k random(1, :event_count)
BEGIN;
SELECT id AS event_id, available_tickets
  FROM events WHERE id = (:event_prefix || lpad(:k::text, 12, '0'))::uuid
   FOR UPDATE \gset
SELECT b.id AS booking_id, b.quantity AS released, :available_tickets + b.quantity AS available
  FROM bookings b
 WHERE b.event_id = :event_id AND b.user_id = 'c-' || :client_id || '-' || :c AND b.status <> 'cancelled' \gset
UPDATE bookings b SET status = 'cancelled', updated_at = now()
 WHERE b.event_id = :event_id AND b.id = :booking_id
RETURNING b.created_at, b.updated_at;
INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity)
VALUES (:event_id, :booking_id, 'c-' || :client_id || '-' || :c, 'cancelled', 'pgbench', :released);
-- At most `available` entries can fit (each wants one ticket or more): the running sum needs no more.
WITH head AS (
     SELECT w.id, w.user_id, w.quantity, sum(w.quantity) OVER (ORDER BY w.seq) AS upto
       FROM (SELECT id, user_id, quantity, seq FROM bookings
              WHERE event_id = :event_id AND status = 'waiting' ORDER BY seq LIMIT :available) w),
promoted AS (
     UPDATE bookings b SET status = 'confirmed', updated_at = now()
       FROM head WHERE b.event_id = :event_id AND b.id = head.id AND head.upto <= :available
     RETURNING b.id, b.user_id, b.quantity),
ledger AS (
     INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity)
     SELECT :event_id, id, user_id, 'promoted', 'pgbench', quantity FROM promoted)
SELECT count(*) AS promoted_entries, coalesce(sum(quantity), 0) AS promoted_tickets FROM promoted \gset
UPDATE events
   SET available_tickets = :available::integer - :promoted_tickets::integer,
       waiting_count = waiting_count - :promoted_entries,
       waiting_tickets = waiting_tickets - :promoted_tickets,
       queue_promoted_entries = queue_promoted_entries + :promoted_entries,
       queue_promoted_tickets = queue_promoted_tickets + :promoted_tickets,
       updated_at = now()
 WHERE id = :event_id;
COMMIT;
