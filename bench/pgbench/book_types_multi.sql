-- hot-types as the naive design sends it: the statements of book_ticket()'s path for an event of several
-- types, one by one, the event lock held across their client round trips (7 under the lock, one more
-- than book_multi.sql: the types' counters). Same statements, same locks, the same rule for a new
-- booking (it gets its tickets iff it fits in the event's room, none of its types has waiting tickets,
-- each item fits in its type's room, and no waiting entry wants more than the event has left), the same
-- counters (the event's, each type's, the item places) and ledger row. The items are drawn as
-- book_types_function.sql draws them. Left out, as in book_multi.sql: the copy of the queue trees' roots.
-- Variables (pgbench -D): event_prefix, event_count, n=0. Users are pg-<client>-<n>, all distinct.
\set n :n + 1
\set k random(1, :event_count)
\set items random(1, 3)
\set first random(0, 2)
\set q1 random(1, 2)
\set q2 random(1, 2)
\set q3 random(1, 2)
BEGIN;
SELECT id AS event_id, available_tickets, max_per_booking, total_tickets, queue_joined_entries, queue_joined_tickets
  FROM events WHERE id = (:event_prefix || lpad(:k::text, 12, '0'))::uuid
   FOR UPDATE \gset
-- What the items' types say of them, and so whether the booking waits.
SELECT i.total AS wanted, i.codes, i.quantities, i.positions, i.tickets_before,
       (i.total > :available_tickets OR i.queued OR NOT i.fit
        OR EXISTS (SELECT 1 FROM bookings w
                    WHERE w.event_id = :event_id AND w.status = 'waiting' AND w.item_types IS NOT NULL
                      AND w.quantity > :available_tickets)) AS waits
  FROM (SELECT sum(w.q) AS total, array_agg(t.code ORDER BY t.position) AS codes,
               array_agg(w.q ORDER BY t.position) AS quantities, array_agg(t.position ORDER BY t.position) AS positions,
               array_agg(t.queue_joined_tickets ORDER BY t.position) AS tickets_before,
               bool_or(w.q > least(coalesce(t.max_per_booking, :max_per_booking), t.total_tickets)) AS above,
               bool_and(w.q <= t.total_tickets - t.taken_tickets) AS fit, bool_or(t.waiting_tickets > 0) AS queued
          FROM (SELECT (ARRAY['stalls', 'circle', 'box'])[(:first + j) % 3 + 1] AS code, (ARRAY[:q1, :q2, :q3]::int[])[j + 1] AS q
                  FROM generate_series(0, :items - 1) AS j) w
          LEFT JOIN ticket_types t ON t.event_id = :event_id AND t.code = w.code) i \gset
INSERT INTO bookings AS b (event_id, user_id, status, quantity, queue_ordinal, queue_tickets_before,
                           item_types, item_quantities, item_tickets_before)
VALUES (:event_id, 'pg-' || :client_id || '-' || :n, CASE WHEN :waits::boolean THEN 'waiting' ELSE 'confirmed' END,
        :wanted, CASE WHEN :waits::boolean THEN :queue_joined_entries::bigint + 1 END,
        CASE WHEN :waits::boolean THEN :queue_joined_tickets::bigint END,
        :codes::text[], :quantities::int[], CASE WHEN :waits::boolean THEN :tickets_before::bigint[] END)
ON CONFLICT (event_id, user_id) WHERE status <> 'cancelled' DO NOTHING
RETURNING b.id, b.status AS booking_status, b.created_at, b.updated_at \gset
UPDATE events
   SET available_tickets = available_tickets - CASE WHEN :waits::boolean THEN 0 ELSE :wanted END,
       waiting_count = waiting_count + (:waits)::boolean::int,
       waiting_tickets = waiting_tickets + CASE WHEN :waits::boolean THEN :wanted ELSE 0 END,
       queue_joined_entries = queue_joined_entries + (:waits)::boolean::int,
       queue_joined_tickets = queue_joined_tickets + CASE WHEN :waits::boolean THEN :wanted ELSE 0 END,
       updated_at = now()
 WHERE id = :event_id;
UPDATE ticket_types t
   SET taken_tickets = t.taken_tickets + CASE WHEN :waits::boolean THEN 0 ELSE i.q END,
       waiting_tickets = t.waiting_tickets + CASE WHEN :waits::boolean THEN i.q ELSE 0 END,
       queue_joined_tickets = t.queue_joined_tickets + CASE WHEN :waits::boolean THEN i.q ELSE 0 END
  FROM unnest(:positions::int[], :quantities::int[]) AS i (p, q)
 WHERE t.event_id = :event_id AND t.position = i.p;
INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, item_types, item_quantities)
VALUES (:event_id, :id, 'pg-' || :client_id || '-' || :n,
        CASE WHEN :booking_status = 'confirmed' THEN 'booked' ELSE 'waitlisted' END, 'pgbench', :wanted,
        :codes::text[], :quantities::int[]);
COMMIT;
