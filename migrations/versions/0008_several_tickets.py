"""Several tickets per booking, a strict first-come-first-served queue, and places that cost O(1).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

A booking holds `quantity` tickets, all or none (contract, "Several tickets per booking"). The
functions gain a trailing quantity argument with a default, so a v1 call (three arguments) resolves
to them and behaves exactly as before: quantity 1, and with only single tickets "nobody waits and
one is left" is v1's "one is left". Cancel takes `p_quantity` (NULL: the whole booking; less than
held: a partial cancel, where a waiting entry keeps its place). Every release runs the strict FIFO
promotion `promote_waiting`: confirm the head while it fits, stop at the first that does not.

The waiting list's places (docs/performance.md, "The waiting list at a million entries"): each
waiting entry keeps `queue_ordinal` (its arrival rank among the event's entries ever queued) and
`queue_tickets_before` (the tickets queued before it), both read from counters on the event row under
its lock. What left the queue since is subtracted: entries promoted (always from the head, so always
ahead of every waiting entry) are totals on the event row; entries that left from anywhere else (a
waiting entry cancelled, or shrunk by a partial cancel) are counted in `queue_departures`, a
Fenwick tree over ordinals, so "how many left ahead of ordinal o" is a sum of at most 31 nodes and
recording a departure updates at most 1 + log2(ordinals given), as the tree grows with the queue.
Nothing costs more as the queue grows, beyond that logarithm.

Downgrade refuses, with the counts, while any booking or ledger entry concerns more than one ticket:
the single-ticket schema cannot say what they hold. Otherwise it restores 0007's schema and
functions exactly (events' max_per_booking, which nothing before 0008 reads, is dropped with it).
"""

import sqlalchemy as sa
from alembic import op

from app.database.functions import create_or_replace, drop

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The definitions this revision installs, frozen (app/database/functions.py); each is its
# app/booking/sql/<function>.sql file as of this revision.
QUEUE_PREFIX_NODES = """
CREATE OR REPLACE FUNCTION queue_prefix_nodes(p_ordinal bigint) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    nodes bigint[] := '{}';
    node bigint := p_ordinal;
BEGIN
    WHILE node > 0 LOOP
        nodes := nodes || node;
        node := node & (node - 1);
    END LOOP;
    RETURN nodes;
END
$$;
"""

QUEUE_COVER_NODES = """
CREATE OR REPLACE FUNCTION queue_cover_nodes(p_ordinal bigint, p_joined bigint) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    nodes bigint[] := '{}';
    node bigint := p_ordinal;
BEGIN
    WHILE node < 2 * p_joined LOOP
        nodes := nodes || node;
        node := node + (node & -node);
    END LOOP;
    RETURN nodes;
END
$$;
"""

WAITING_PLACE = """
CREATE OR REPLACE FUNCTION waiting_place(p_event_id uuid, p_ordinal bigint, p_tickets_before bigint)
RETURNS TABLE (waiting_position integer, tickets_ahead bigint)
LANGUAGE sql STABLE AS $$
    SELECT (p_ordinal - e.queue_promoted_entries - coalesce(sum(d.entries), 0))::integer,
           p_tickets_before - e.queue_promoted_tickets - coalesce(sum(d.tickets), 0)::bigint
      FROM events e
      LEFT JOIN queue_departures d
        ON d.event_id = e.id AND d.node = ANY (queue_prefix_nodes(p_ordinal - 1))
     WHERE e.id = p_event_id
     GROUP BY e.id
$$;
"""

BOOK_TICKET = """
CREATE OR REPLACE FUNCTION book_ticket(p_event_id uuid, p_user_id text, p_request_id text, p_quantity integer DEFAULT 1)
RETURNS TABLE (outcome text, booking_id uuid, booking_status text, waiting_position integer,
               booking_created_at timestamptz, booking_updated_at timestamptz,
               booking_quantity integer, tickets_ahead bigint)
LANGUAGE plpgsql AS $$
DECLARE
    ev events%ROWTYPE;
    waits boolean;
    -- Read once the lock is held, so that an event's changes are stamped in the order the lock served
    -- them; now() is the transaction's start, which came before the wait for the lock.
    changed_at timestamptz;
BEGIN
    SELECT * INTO ev FROM events WHERE id = p_event_id FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'event_not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    -- More than the event allows, or than it has (it could never be confirmed and would block the queue).
    IF p_quantity > least(ev.max_per_booking, ev.total_tickets) THEN
        outcome := 'quantity_above_limit';
        RETURN NEXT;
        RETURN;
    END IF;
    changed_at := clock_timestamp();
    -- All or nothing, and nobody overtakes a waiting entry, not even a smaller booking.
    waits := ev.waiting_count > 0 OR p_quantity > ev.available_tickets;
    booking_status := CASE WHEN waits THEN 'waiting' ELSE 'confirmed' END;
    INSERT INTO bookings AS b (event_id, user_id, status, quantity, queue_ordinal, queue_tickets_before,
                               created_at, updated_at)
    VALUES (p_event_id, p_user_id, booking_status, p_quantity,
            CASE WHEN waits THEN ev.queue_joined_entries + 1 END,
            CASE WHEN waits THEN ev.queue_joined_tickets END, changed_at, changed_at)
    ON CONFLICT (event_id, user_id) WHERE status <> 'cancelled' DO NOTHING
    RETURNING b.id, b.created_at, b.updated_at, b.quantity
    INTO booking_id, booking_created_at, booking_updated_at, booking_quantity;
    IF NOT FOUND THEN
        outcome := 'already_booked';
        booking_status := NULL;
        RETURN NEXT;
        RETURN;
    END IF;
    UPDATE events
       SET available_tickets = available_tickets - CASE WHEN waits THEN 0 ELSE p_quantity END,
           waiting_count = waiting_count + waits::int,
           waiting_tickets = waiting_tickets + CASE WHEN waits THEN p_quantity ELSE 0 END,
           queue_joined_entries = queue_joined_entries + waits::int,
           queue_joined_tickets = queue_joined_tickets + CASE WHEN waits THEN p_quantity ELSE 0 END,
           updated_at = changed_at
     WHERE id = p_event_id;
    IF waits AND ev.queue_joined_entries > 0 AND ev.queue_joined_entries & (ev.queue_joined_entries - 1) = 0 THEN
        -- The ordinals outgrow the tree (a power of two): the new root spans the old one and ordinals
        -- that nobody has had yet, so it starts as a copy of the old root (queue_cover_nodes.sql).
        INSERT INTO queue_departures (event_id, node, entries, tickets)
        SELECT p_event_id, 2 * d.node, d.entries, d.tickets
          FROM queue_departures d
         WHERE d.event_id = p_event_id AND d.node = ev.queue_joined_entries;
    END IF;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
    VALUES (p_event_id, booking_id, p_user_id, CASE WHEN waits THEN 'waitlisted' ELSE 'booked' END,
            p_request_id, p_quantity, changed_at);
    -- New entries join at the back: everyone waiting is ahead.
    waiting_position := CASE WHEN waits THEN ev.waiting_count + 1 END;
    tickets_ahead := CASE WHEN waits THEN ev.waiting_tickets END;
    outcome := 'ok';
    RETURN NEXT;
END
$$;
"""

PROMOTE_WAITING = """
CREATE OR REPLACE FUNCTION promote_waiting(
    p_event_id uuid, p_available integer, p_changed_at timestamptz,
    OUT promoted_ids uuid[], OUT promoted_user_ids text[], OUT promoted_quantities integer[],
    OUT promoted_created_ats timestamptz[], OUT promoted_updated_ats timestamptz[], OUT promoted_tickets integer)
LANGUAGE plpgsql AS $$
DECLARE
    head record;
BEGIN
    promoted_ids := '{}';
    promoted_user_ids := '{}';
    promoted_quantities := '{}';
    promoted_created_ats := '{}';
    promoted_updated_ats := '{}';
    promoted_tickets := 0;
    LOOP
        -- The head (oldest waiting entry), confirmed only if it fits: the first that does not, stops.
        UPDATE bookings b SET status = 'confirmed', updated_at = p_changed_at
         WHERE b.event_id = p_event_id
           AND b.id = (SELECT w.id FROM bookings w
                        WHERE w.event_id = p_event_id AND w.status = 'waiting'
                        ORDER BY w.seq LIMIT 1)
           AND b.quantity <= p_available - promoted_tickets
        RETURNING b.id, b.user_id, b.quantity, b.created_at, b.updated_at INTO head;
        EXIT WHEN NOT FOUND;
        promoted_ids := promoted_ids || head.id;
        promoted_user_ids := promoted_user_ids || head.user_id;
        promoted_quantities := promoted_quantities || head.quantity;
        promoted_created_ats := promoted_created_ats || head.created_at;
        promoted_updated_ats := promoted_updated_ats || head.updated_at;
        promoted_tickets := promoted_tickets + head.quantity;
    END LOOP;
END
$$;
"""

CANCEL_BOOKING = """
CREATE OR REPLACE FUNCTION cancel_booking(p_event_id uuid, p_user_id text, p_request_id text, p_quantity integer DEFAULT NULL)
RETURNS TABLE (outcome text, booking_id uuid, booking_created_at timestamptz,
               booking_updated_at timestamptz, promoted_id uuid, promoted_user_id text,
               promoted_created_at timestamptz, promoted_updated_at timestamptz,
               booking_status text, booking_quantity integer, waiting_position integer, tickets_ahead bigint,
               promoted_ids uuid[], promoted_user_ids text[], promoted_quantities integer[],
               promoted_created_ats timestamptz[], promoted_updated_ats timestamptz[])
LANGUAGE plpgsql AS $$
DECLARE
    ev events%ROWTYPE;
    held bookings%ROWTYPE;
    released integer;  -- the tickets the booking gives up
    available integer;  -- the event's, once they are released
    promoted_tickets integer;
    -- Read once the lock is held, so that an event's changes are stamped in the order the lock served
    -- them; now() is the transaction's start, which came before the wait for the lock.
    changed_at timestamptz;
BEGIN
    SELECT * INTO ev FROM events WHERE id = p_event_id FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'event_not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT * INTO held FROM bookings b
     WHERE b.event_id = p_event_id AND b.user_id = p_user_id AND b.status <> 'cancelled';
    IF NOT FOUND THEN
        outcome := CASE WHEN EXISTS (SELECT 1 FROM bookings b
                                      WHERE b.event_id = p_event_id AND b.user_id = p_user_id)
                        THEN 'already_cancelled' ELSE 'booking_not_found' END;
        RETURN NEXT;
        RETURN;
    END IF;
    IF p_quantity < 1 THEN
        RAISE EXCEPTION 'cancel_booking: quantity % is not a number of tickets', p_quantity
              USING ERRCODE = 'check_violation';
    END IF;
    IF p_quantity > held.quantity THEN
        outcome := 'quantity_above_held';
        RETURN NEXT;
        RETURN;
    END IF;
    changed_at := clock_timestamp();
    released := coalesce(p_quantity, held.quantity);
    booking_status := CASE WHEN released = held.quantity THEN 'cancelled' ELSE held.status END;
    -- A whole cancel keeps the quantity it held, as history; a partial one keeps the rest.
    UPDATE bookings b
       SET status = booking_status, updated_at = changed_at,
           quantity = b.quantity - CASE WHEN booking_status = 'cancelled' THEN 0 ELSE released END
     WHERE b.event_id = p_event_id AND b.id = held.id
    RETURNING b.id, b.created_at, b.updated_at, b.quantity
    INTO booking_id, booking_created_at, booking_updated_at, booking_quantity;
    IF held.status = 'waiting' THEN
        -- Left from the middle (or shrank): counted at its arrival rank, for the places behind it.
        INSERT INTO queue_departures AS d (event_id, node, entries, tickets)
        SELECT p_event_id, node, (booking_status = 'cancelled')::int, released
          FROM unnest(queue_cover_nodes(held.queue_ordinal, ev.queue_joined_entries)) AS node
        ON CONFLICT (event_id, node) DO UPDATE
           SET entries = d.entries + excluded.entries, tickets = d.tickets + excluded.tickets;
    END IF;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
    VALUES (p_event_id, booking_id, p_user_id,
            CASE WHEN booking_status = 'cancelled' THEN 'cancelled' ELSE 'reduced' END, p_request_id, released,
            changed_at);
    available := ev.available_tickets + CASE WHEN held.status = 'confirmed' THEN released ELSE 0 END;
    IF available > 0 THEN
        SELECT * INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats,
                      promoted_updated_ats, promoted_tickets
          FROM promote_waiting(p_event_id, available, changed_at);
    ELSE  -- nobody fits in no ticket: a waiting entry that leaves a sold-out event, the usual case
        SELECT '{}', '{}', '{}', '{}', '{}', 0
          INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats,
               promoted_updated_ats, promoted_tickets;
    END IF;
    IF promoted_tickets > 0 THEN
        INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
        SELECT p_event_id, p.id, p.user_id, 'promoted', p_request_id, p.quantity, changed_at
          FROM unnest(promoted_ids, promoted_user_ids, promoted_quantities) WITH ORDINALITY
               AS p (id, user_id, quantity, step)
         ORDER BY p.step;
    END IF;
    UPDATE events
       SET available_tickets = available - promoted_tickets,
           waiting_count = waiting_count - (held.status = 'waiting' AND booking_status = 'cancelled')::int
                           - cardinality(promoted_ids),
           waiting_tickets = waiting_tickets - CASE WHEN held.status = 'waiting' THEN released ELSE 0 END
                             - promoted_tickets,
           queue_promoted_entries = queue_promoted_entries + cardinality(promoted_ids),
           queue_promoted_tickets = queue_promoted_tickets + promoted_tickets,
           updated_at = changed_at
     WHERE id = p_event_id;
    IF booking_id = ANY (promoted_ids) THEN
        booking_status := 'confirmed';  -- a head that shrank until it fitted
    ELSIF booking_status = 'waiting' THEN
        SELECT * INTO waiting_position, tickets_ahead
          FROM waiting_place(p_event_id, held.queue_ordinal, held.queue_tickets_before);
    END IF;
    promoted_id := promoted_ids[1];
    promoted_user_id := promoted_user_ids[1];
    promoted_created_at := promoted_created_ats[1];
    promoted_updated_at := promoted_updated_ats[1];
    outcome := 'ok';
    RETURN NEXT;
END
$$;
"""

BOOK_MANY = """
CREATE OR REPLACE FUNCTION book_many(p_event_id uuid, p_user_ids text[], p_request_ids text[], p_quantities integer[] DEFAULT NULL)
RETURNS TABLE (outcome text, booking_id uuid, booking_status text, waiting_position integer,
               booking_created_at timestamptz, booking_updated_at timestamptz,
               booking_quantity integer, tickets_ahead bigint)
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_user_ids, 1), 0) LOOP
        RETURN QUERY SELECT * FROM book_ticket(p_event_id, p_user_ids[i], p_request_ids[i],
                                               coalesce(p_quantities[i], 1));
    END LOOP;
END
$$;
"""

# The definitions before this revision (0006's book_ticket and cancel_booking, 0005's book_many),
# which the downgrade restores.
BOOK_TICKET_BEFORE = """
CREATE OR REPLACE FUNCTION book_ticket(p_event_id uuid, p_user_id text, p_request_id text)
RETURNS TABLE (outcome text, booking_id uuid, booking_status text, waiting_position integer,
               booking_created_at timestamptz, booking_updated_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    ev events%ROWTYPE;
    -- Read once the lock is held, so that an event's changes are stamped in the order the lock served
    -- them; now() is the transaction's start, which came before the wait for the lock.
    changed_at timestamptz;
BEGIN
    SELECT * INTO ev FROM events WHERE id = p_event_id FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'event_not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    changed_at := clock_timestamp();
    booking_status := CASE WHEN ev.available_tickets > 0 THEN 'confirmed' ELSE 'waiting' END;
    INSERT INTO bookings AS b (event_id, user_id, status, created_at, updated_at)
    VALUES (p_event_id, p_user_id, booking_status, changed_at, changed_at)
    ON CONFLICT (event_id, user_id) WHERE status <> 'cancelled' DO NOTHING
    RETURNING b.id, b.created_at, b.updated_at
    INTO booking_id, booking_created_at, booking_updated_at;
    IF NOT FOUND THEN
        outcome := 'already_booked';
        booking_status := NULL;
        RETURN NEXT;
        RETURN;
    END IF;
    UPDATE events
       SET available_tickets = available_tickets - (booking_status = 'confirmed')::int,
           waiting_count = waiting_count + (booking_status = 'waiting')::int,
           updated_at = changed_at
     WHERE id = p_event_id;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, created_at)
    VALUES (p_event_id, booking_id, p_user_id,
            CASE WHEN booking_status = 'confirmed' THEN 'booked' ELSE 'waitlisted' END, p_request_id, changed_at);
    -- New entries join at the back, so the position is the queue length including them.
    waiting_position := CASE WHEN booking_status = 'waiting' THEN ev.waiting_count + 1 END;
    outcome := 'ok';
    RETURN NEXT;
END
$$;
"""

CANCEL_BOOKING_BEFORE = """
CREATE OR REPLACE FUNCTION cancel_booking(p_event_id uuid, p_user_id text, p_request_id text)
RETURNS TABLE (outcome text, booking_id uuid, booking_created_at timestamptz,
               booking_updated_at timestamptz, promoted_id uuid, promoted_user_id text,
               promoted_created_at timestamptz, promoted_updated_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    was_status text;
    -- Read once the lock is held, so that an event's changes are stamped in the order the lock served
    -- them; now() is the transaction's start, which came before the wait for the lock.
    changed_at timestamptz;
BEGIN
    PERFORM 1 FROM events WHERE id = p_event_id FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'event_not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT b.id, b.status INTO booking_id, was_status
      FROM bookings b
     WHERE b.event_id = p_event_id AND b.user_id = p_user_id AND b.status <> 'cancelled';
    IF NOT FOUND THEN
        outcome := CASE WHEN EXISTS (SELECT 1 FROM bookings b
                                      WHERE b.event_id = p_event_id AND b.user_id = p_user_id)
                        THEN 'already_cancelled' ELSE 'booking_not_found' END;
        RETURN NEXT;
        RETURN;
    END IF;
    changed_at := clock_timestamp();
    UPDATE bookings b SET status = 'cancelled', updated_at = changed_at
     WHERE b.event_id = p_event_id AND b.id = booking_id
    RETURNING b.created_at, b.updated_at INTO booking_created_at, booking_updated_at;
    IF was_status = 'confirmed' THEN
        -- The freed ticket goes to the oldest waiting entry, if any (strict FIFO by seq).
        UPDATE bookings b SET status = 'confirmed', updated_at = changed_at
         WHERE b.event_id = p_event_id
           AND b.id = (SELECT w.id FROM bookings w
                        WHERE w.event_id = p_event_id AND w.status = 'waiting'
                        ORDER BY w.seq LIMIT 1)
        RETURNING b.id, b.user_id, b.created_at, b.updated_at
        INTO promoted_id, promoted_user_id, promoted_created_at, promoted_updated_at;
    END IF;
    UPDATE events
       SET available_tickets = available_tickets
                               + (was_status = 'confirmed' AND promoted_id IS NULL)::int,
           waiting_count = waiting_count
                           - (was_status = 'waiting' OR promoted_id IS NOT NULL)::int,
           updated_at = changed_at
     WHERE id = p_event_id;
    -- One statement for both rows (the cancellation, then any promotion): one less inside the lock.
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, created_at)
    SELECT p_event_id, change.booking, change.who, change.kind, p_request_id, changed_at
      FROM (VALUES (1, booking_id, p_user_id, 'cancelled'),
                   (2, promoted_id, promoted_user_id, 'promoted')) AS change (step, booking, who, kind)
     WHERE change.booking IS NOT NULL
     ORDER BY change.step;
    outcome := 'ok';
    RETURN NEXT;
END
$$;
"""

BOOK_MANY_BEFORE = """
CREATE OR REPLACE FUNCTION book_many(p_event_id uuid, p_user_ids text[], p_request_ids text[])
RETURNS TABLE (outcome text, booking_id uuid, booking_status text, waiting_position integer,
               booking_created_at timestamptz, booking_updated_at timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_user_ids, 1), 0) LOOP
        RETURN QUERY SELECT * FROM book_ticket(p_event_id, p_user_ids[i], p_request_ids[i]);
    END LOOP;
END
$$;
"""

# Existing waiting entries get the places they hold: ranks 1..n in seq order, one ticket each.
BACKFILL_QUEUE = """
UPDATE bookings b
   SET queue_ordinal = ranked.ordinal, queue_tickets_before = ranked.ordinal - 1
  FROM (SELECT id, event_id, row_number() OVER (PARTITION BY event_id ORDER BY seq) AS ordinal
          FROM bookings WHERE status = 'waiting') AS ranked
 WHERE b.event_id = ranked.event_id AND b.id = ranked.id
"""
BACKFILL_EVENTS = """
UPDATE events SET waiting_tickets = waiting_count,
                  queue_joined_entries = waiting_count, queue_joined_tickets = waiting_count
"""

# What the single-ticket schema could not hold: bookings and ledger entries of several tickets, by event.
SEVERAL_TICKETS_HELD = """
SELECT (SELECT count(*) FROM bookings WHERE quantity <> 1) AS bookings,
       (SELECT count(*) FROM booking_events WHERE quantity <> 1) AS entries,
       array(SELECT event_id::text FROM bookings WHERE quantity <> 1
             UNION SELECT event_id::text FROM booking_events WHERE quantity <> 1 ORDER BY 1 LIMIT 5) AS events
"""

BIGINT_ZERO = {"server_default": sa.text("0"), "nullable": False}
# Signatures change (a trailing quantity argument, new result columns): CREATE OR REPLACE cannot turn
# one into the other, so the old ones are dropped first, in both directions.
SINGLE_TICKET_SIGNATURES = (
    "book_many(uuid, text[], text[])",
    "cancel_booking(uuid, text, text)",
    "book_ticket(uuid, text, text)",
)
SEVERAL_TICKETS_SIGNATURES = (
    "book_many(uuid, text[], text[], integer[])",
    "cancel_booking(uuid, text, text, integer)",
    "promote_waiting(uuid, integer, timestamptz)",
    "book_ticket(uuid, text, text, integer)",
    "waiting_place(uuid, bigint, bigint)",
    "queue_cover_nodes(bigint, bigint)",
    "queue_prefix_nodes(bigint)",
)


def upgrade() -> None:
    _add_event_columns()
    _add_booking_columns()
    _add_ledger_quantity()
    _create_queue_departures()
    drop(*SINGLE_TICKET_SIGNATURES)
    create_or_replace(
        QUEUE_PREFIX_NODES, QUEUE_COVER_NODES, WAITING_PLACE, BOOK_TICKET, PROMOTE_WAITING, CANCEL_BOOKING, BOOK_MANY
    )


def downgrade() -> None:
    _refuse_while_several_tickets_are_held()
    drop(*SEVERAL_TICKETS_SIGNATURES)
    op.drop_table("queue_departures")
    create_or_replace(BOOK_TICKET_BEFORE, CANCEL_BOOKING_BEFORE, BOOK_MANY_BEFORE)
    _drop_ledger_quantity()
    _drop_booking_columns()
    _drop_event_columns()


def _add_event_columns() -> None:
    op.add_column("events", sa.Column("max_per_booking", sa.Integer, server_default=sa.text("10"), nullable=False))
    op.add_column("events", sa.Column("waiting_tickets", sa.BigInteger, **BIGINT_ZERO))
    for counter in ("queue_joined_entries", "queue_joined_tickets", "queue_promoted_entries", "queue_promoted_tickets"):
        op.add_column("events", sa.Column(counter, sa.BigInteger, **BIGINT_ZERO))
    op.execute(BACKFILL_EVENTS)
    op.drop_constraint(op.f("ck_events_waiting_only_when_sold_out"), "events", type_="check")
    _add_checks("events", EVENT_CHECKS)


EVENT_CHECKS = {
    "max_per_booking_range": "max_per_booking BETWEEN 1 AND 100",
    # Each waiting entry wants 1..100 tickets.
    "waiting_tickets_range": "waiting_tickets BETWEEN waiting_count AND 100 * waiting_count::bigint",
    # Someone waits only while the head does not fit, and the head wants at most all the waiting tickets.
    "waiting_only_when_short": "waiting_count = 0 OR available_tickets < waiting_tickets",
    # The queue's ordinals index a Fenwick tree of 2^31 - 1 places.
    "queue_joined_range": "queue_joined_entries BETWEEN 0 AND 2147483647 AND queue_joined_tickets >= queue_joined_entries",
    "queue_promoted_range": "queue_promoted_entries BETWEEN 0 AND queue_joined_entries - waiting_count "
    "AND queue_promoted_tickets BETWEEN queue_promoted_entries AND queue_joined_tickets - waiting_tickets",
}


def _add_booking_columns() -> None:
    op.add_column("bookings", sa.Column("quantity", sa.Integer, server_default=sa.text("1"), nullable=False))
    op.add_column("bookings", sa.Column("queue_ordinal", sa.BigInteger))
    op.add_column("bookings", sa.Column("queue_tickets_before", sa.BigInteger))
    op.execute(BACKFILL_QUEUE)
    _add_checks("bookings", BOOKING_CHECKS)


BOOKING_CHECKS = {
    "quantity_range": "quantity BETWEEN 1 AND 100",
    "waiting_has_a_place": "status <> 'waiting' OR (queue_ordinal IS NOT NULL AND queue_tickets_before IS NOT NULL)",
    "queue_place_range": "queue_ordinal BETWEEN 1 AND 2147483647 AND queue_tickets_before >= queue_ordinal - 1",
}


def _add_checks(table: str, checks: dict[str, str]) -> None:
    for name, condition in checks.items():
        op.create_check_constraint(op.f(f"ck_{table}_{name}"), table, condition)


def _add_ledger_quantity() -> None:
    # Every entry before this revision concerned one ticket; from now on the functions always say how many.
    op.add_column("booking_events", sa.Column("quantity", sa.Integer, server_default=sa.text("1"), nullable=False))
    op.alter_column("booking_events", "quantity", server_default=None)
    op.create_check_constraint(op.f("ck_booking_events_quantity_range"), "booking_events", "quantity BETWEEN 1 AND 100")
    op.drop_constraint(op.f("ck_booking_events_kind_known"), "booking_events", type_="check")
    op.create_check_constraint(
        op.f("ck_booking_events_kind_known"),
        "booking_events",
        "kind IN ('booked', 'waitlisted', 'cancelled', 'reduced', 'promoted')",
    )


def _create_queue_departures() -> None:
    op.create_table(
        "queue_departures",
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("node", sa.BigInteger, nullable=False),
        sa.Column("entries", sa.BigInteger, nullable=False),
        sa.Column("tickets", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("event_id", "node", name=op.f("pk_queue_departures")),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_queue_departures_event_id_events"), ondelete="CASCADE"
        ),
        sa.CheckConstraint("node BETWEEN 1 AND 2147483648", name=op.f("ck_queue_departures_node_range")),
        sa.CheckConstraint("entries >= 0 AND tickets >= entries", name=op.f("ck_queue_departures_counts_range")),
    )


def _refuse_while_several_tickets_are_held() -> None:
    held = op.get_bind().execute(sa.text(SEVERAL_TICKETS_HELD)).one()
    if held.bookings or held.entries:
        raise RuntimeError(
            f"cannot downgrade below 0008: {held.bookings} booking(s) and {held.entries} ledger entries concern "
            f"several tickets (events {', '.join(held.events)}{', ...' if len(held.events) == 5 else ''}), which "
            "the single-ticket schema cannot represent. Delete those events (their bookings and ledger go "
            "with them) or restore a backup taken before 0008; nothing was changed."
        )


def _drop_ledger_quantity() -> None:
    op.drop_constraint(op.f("ck_booking_events_kind_known"), "booking_events", type_="check")
    op.create_check_constraint(
        op.f("ck_booking_events_kind_known"),
        "booking_events",
        "kind IN ('booked', 'waitlisted', 'cancelled', 'promoted')",
    )
    op.drop_column("booking_events", "quantity")


def _drop_booking_columns() -> None:
    for column in ("queue_tickets_before", "queue_ordinal", "quantity"):
        op.drop_column("bookings", column)


def _drop_event_columns() -> None:
    for name in EVENT_CHECKS:
        op.drop_constraint(op.f(f"ck_events_{name}"), "events", type_="check")
    for column in (
        "queue_promoted_tickets",
        "queue_promoted_entries",
        "queue_joined_tickets",
        "queue_joined_entries",
        "waiting_tickets",
        "max_per_booking",
    ):
        op.drop_column("events", column)
    op.create_check_constraint(
        op.f("ck_events_waiting_only_when_sold_out"), "events", "waiting_count = 0 OR available_tickets = 0"
    )
