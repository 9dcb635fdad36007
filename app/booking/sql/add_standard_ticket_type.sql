-- add_standard_ticket_type: the trigger on events that gives every new event its first ticket type,
-- `standard` (position 1), holding the event's total, so that an event always has at least one type
-- (issue 26), however it was made. An event opened with its own types (app/booking/services.py,
-- OpenEvent) inserts them in the same statement: its position 1 is already there, and this adds nothing.
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). Off the bookings' path: it runs once per event, when it is opened.

CREATE OR REPLACE FUNCTION add_standard_ticket_type() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ticket_types (event_id, position, code, total_tickets)
    VALUES (NEW.id, 1, 'standard', NEW.total_tickets)
    ON CONFLICT (event_id, position) DO NOTHING;
    RETURN NULL;
END
$$;
