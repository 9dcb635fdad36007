-- The queue scenario's 5-type variant (queue-types): one event with a million waiting entries over five
-- ticket types, as book_ticket would have queued them, seeded in SQL. psql variables: :event (uuid) and
-- :waiting. 10 tickets under a shared cap: five types of 4 tickets each (20 between them), type k held 2
-- by holder-k. Entry w<i> wants 1 + i % 2 tickets of type 1 + i % 5 and, every third entry, also 1 of type
-- 1 + (i + 2) % 5: 1..3 tickets of 1..2 types. Its ordinal, the tickets queued before it, and for each
-- item the tickets of its type queued before it are what book_ticket would have given it; the event's and
-- the types' counters are set to match. Nobody has left the queue yet. One transaction: the event's own
-- types replace the `standard` one its insert adds.
BEGIN;
INSERT INTO events (id, name, total_tickets, available_tickets, max_per_booking, ticket_type_count)
VALUES (:'event', 'queue-types', 10, 0, 4, 5);
INSERT INTO ticket_types (event_id, position, code, total_tickets, taken_tickets)
SELECT :'event', k, 'type-' || k, 4, 2 FROM generate_series(1, 5) AS k
    ON CONFLICT (event_id, position) DO UPDATE
   SET code = excluded.code, total_tickets = excluded.total_tickets, taken_tickets = excluded.taken_tickets;
INSERT INTO bookings (event_id, user_id, status, quantity, item_types, item_quantities)
SELECT :'event', 'holder-' || k, 'confirmed', 2, ARRAY['type-' || k], ARRAY[2] FROM generate_series(1, 5) AS k;
WITH items AS (
     SELECT i, 1 + i % 5 AS k, 1 + i % 2 AS q FROM generate_series(1, :waiting) AS i
     UNION ALL
     SELECT i, 1 + (i + 2) % 5, 1 FROM generate_series(3, :waiting, 3) AS i),
placed AS (
     SELECT i, k, q, sum(q) OVER (PARTITION BY k ORDER BY i) - q AS before FROM items)
INSERT INTO bookings (event_id, user_id, status, quantity, queue_ordinal, queue_tickets_before,
                      item_types, item_quantities, item_tickets_before)
SELECT :'event', 'w' || i, 'waiting', sum(q), i, sum(sum(q)) OVER (ORDER BY i) - sum(q),
       array_agg('type-' || k ORDER BY k), array_agg(q ORDER BY k), array_agg(before ORDER BY k)
  FROM placed
 GROUP BY i
 ORDER BY i;
UPDATE ticket_types t
   SET waiting_tickets = w.tickets, queue_joined_tickets = w.tickets
  FROM (SELECT item.code, sum(item.quantity) AS tickets
          FROM bookings b, unnest(b.item_types, b.item_quantities) AS item (code, quantity)
         WHERE b.event_id = :'event' AND b.status = 'waiting'
         GROUP BY item.code) AS w
 WHERE t.event_id = :'event' AND t.code = w.code;
UPDATE events e
   SET waiting_count = q.entries, waiting_tickets = q.tickets,
       queue_joined_entries = q.entries, queue_joined_tickets = q.tickets
  FROM (SELECT count(*) AS entries, sum(quantity) AS tickets FROM bookings
         WHERE event_id = :'event' AND status = 'waiting') AS q
 WHERE e.id = :'event';
COMMIT;
