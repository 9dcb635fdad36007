-- One event with a million waiting entries, as book_ticket would have queued them, seeded in SQL.
-- psql variables: :event (uuid) and :waiting (the entries to queue). 10 tickets, held by 5 holders of 2;
-- the entries want 1..4 tickets each. Their ordinals and the tickets before each are what book_ticket
-- would have given them; the event's counters are set to match. Nobody has left the queue yet.
INSERT INTO events (id, name, total_tickets, available_tickets, max_per_booking)
VALUES (:'event', 'queue', 10, 0, 4);
INSERT INTO bookings (event_id, user_id, status, quantity)
SELECT :'event', 'holder-' || i, 'confirmed', 2 FROM generate_series(1, 5) AS i;
INSERT INTO bookings (event_id, user_id, status, quantity, queue_ordinal, queue_tickets_before)
SELECT :'event', 'w' || i, 'waiting', 1 + i % 4, i, sum(1 + i % 4) OVER (ORDER BY i) - (1 + i % 4)
  FROM generate_series(1, :waiting) AS i
 ORDER BY i;
UPDATE events e
   SET waiting_count = q.entries, waiting_tickets = q.tickets,
       queue_joined_entries = q.entries, queue_joined_tickets = q.tickets
  FROM (SELECT count(*) AS entries, sum(quantity) AS tickets FROM bookings
         WHERE event_id = :'event' AND status = 'waiting') AS q
 WHERE e.id = :'event';
