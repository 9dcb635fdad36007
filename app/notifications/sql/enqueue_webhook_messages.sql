-- enqueue_webhook_messages: the trigger on the ledger (booking_events) that turns each change into one
-- message per webhook that wants it, in the outbox `webhook_messages`, in the change's own transaction.
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). Each message keeps a snapshot of the booking and the event as the change left
-- them, so that a retry hours later still reports that change; a newly waiting booking joined the back
-- of the queue, behind everyone waiting then: those who joined after it, in the same statement (the draw
-- queues many at once, queue_lobby.sql), are the ordinals and tickets past its own (its
-- queue_ordinal, queue_tickets_before against the event's queue_joined_* counters), so its position is
-- the event's waiting count but those, and the tickets ahead of it the waiting tickets but its own and
-- theirs. Ledger kinds and the message types they become; a
-- kind with no type (a partial cancel, `reduced`) sends nothing. An offer (issue 16) is booking.offered;
-- accepted, it is booking.confirmed; declined or expired, booking.cancelled, whose booking says why
-- (cancel_reason). A hold (issue 25), made at a booking, a promotion or an accept, is booking.held; paid
-- (confirm), booking.confirmed; expired, booking.cancelled with cancel_reason hold_expired. An organiser's
-- change of the event is event.updated, once per change (`event_updated`;
-- its `capacity_changed` and `sales_*` entries send nothing of their own), and calling it off is
-- event.cancelled (`event_cancelled`, before the booking.cancelled of each booking it cancels): an
-- event's entry names no booking, so its message has none (NULL). A type's change (`type_added`,
-- `type_changed`) sends nothing of its own: its PATCH's event.updated carries the types.
--
-- Ticket types (issue 26): the event's snapshot carries its types as its replies show them
-- (event_ticket_types.sql), the booking's its items (on an event of one type, its one item of the first
-- type). A booking newly waiting has each item's tickets ahead: on an event of one type the booking's;
-- on an event of several, its type's waiting tickets but its own and those of the entries that joined
-- after it (item_tickets_before against the type's queue_joined_tickets), and the booking's is their
-- sum, as the API's.
--
-- The fair sale opening (issue 27): joining the lobby (`lobby`) sends nothing; the draw's booking of an
-- entry is its ordinary booked / held / waitlisted message, and the draw done (`lobby_drawn`) is
-- event.sales_opened, the event's counts as the draw left them. The entries the draw queues at once share
-- the event's snapshot as that step left it.

CREATE OR REPLACE FUNCTION enqueue_webhook_messages() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    message_type text := CASE NEW.kind WHEN 'booked' THEN 'booking.confirmed'
                                       WHEN 'waitlisted' THEN 'booking.waitlisted'
                                       WHEN 'promoted' THEN 'booking.promoted'
                                       WHEN 'offered' THEN 'booking.offered'
                                       WHEN 'accepted' THEN 'booking.confirmed'
                                       WHEN 'cancelled' THEN 'booking.cancelled'
                                       WHEN 'declined' THEN 'booking.cancelled'
                                       WHEN 'expired' THEN 'booking.cancelled'
                                       WHEN 'held' THEN 'booking.held'
                                       WHEN 'paid' THEN 'booking.confirmed'
                                       WHEN 'hold_expired' THEN 'booking.cancelled'
                                       WHEN 'event_updated' THEN 'event.updated'
                                       WHEN 'event_cancelled' THEN 'event.cancelled'
                                       WHEN 'lobby_drawn' THEN 'event.sales_opened' END;
    listeners uuid[];  -- the webhooks that want this change's message
BEGIN
    -- Decided before the statement that builds the messages: a kind that sends nothing (a lobby entry, a
    -- partial cancel), or a change nobody listens to, runs no more. Folded into the statement, a kind that
    -- sends nothing made its plan nearly free, and a session that had made many such changes (a lobby
    -- filling) went on planning the statement afresh for every change after.
    IF message_type IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT array_agg(w.id) INTO listeners
      FROM webhooks w
     WHERE w.disabled_at IS NULL AND (w.event_id IS NULL OR w.event_id = NEW.event_id)
       AND (w.types IS NULL OR message_type = ANY (w.types));
    IF listeners IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_messages (webhook_id, ledger_seq, event_id, booking_id, type, booking, event, occurred_at)
    SELECT w.id, NEW.seq, NEW.event_id, NEW.booking_id, message_type,
           to_jsonb(b) || jsonb_build_object(
               'waiting_position', CASE WHEN b.status = 'waiting'
                                         THEN e.waiting_count - (e.queue_joined_entries - b.queue_ordinal) END,
               'tickets_ahead', CASE WHEN b.status = 'waiting'
                                     THEN coalesce(places.tickets_ahead, tickets_behind.ahead) END,
               'items', (SELECT jsonb_agg(jsonb_build_object('ticket_type', i.code, 'quantity', i.quantity)
                                          || CASE WHEN b.status = 'waiting'
                                                  THEN jsonb_build_object('tickets_ahead', coalesce(
                                                           places.aheads[i.n], tickets_behind.ahead))
                                                  ELSE '{}' END
                                          ORDER BY i.n)
                           FROM unnest(coalesce(b.item_types, ARRAY[first_type.code]),
                                       coalesce(b.item_quantities, ARRAY[b.quantity])) WITH ORDINALITY
                                AS i (code, quantity, n))),
           to_jsonb(e) || jsonb_build_object('ticket_types', event_ticket_types(e)), NEW.created_at
      FROM unnest(listeners) AS w (id)
      JOIN events e ON e.id = NEW.event_id
      LEFT JOIN bookings b ON b.event_id = NEW.event_id AND b.id = NEW.booking_id
      LEFT JOIN ticket_types first_type ON first_type.event_id = NEW.event_id AND first_type.position = 1
      CROSS JOIN LATERAL (SELECT e.waiting_tickets - (e.queue_joined_tickets - b.queue_tickets_before) AS ahead)
            tickets_behind
      LEFT JOIN LATERAL (
            SELECT array_agg(t.waiting_tickets - (t.queue_joined_tickets - i.before) ORDER BY i.n) AS aheads,
                   sum(t.waiting_tickets - (t.queue_joined_tickets - i.before))::bigint AS tickets_ahead
              FROM unnest(b.item_types, b.item_quantities, b.item_tickets_before) WITH ORDINALITY
                   AS i (code, quantity, before, n)
              JOIN ticket_types t ON t.event_id = e.id AND t.code = i.code
           ) places ON b.status = 'waiting' AND b.item_types IS NOT NULL;
    RETURN NULL;
END
$$
