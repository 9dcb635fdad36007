"""Event webhooks: every organiser's change sends event.updated, calling an event off event.cancelled.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01

The contract's types `event.updated` and `event.cancelled` could be subscribed to, but no ledger entry
became one. Now:
- The ledger gains the kind `event_updated`, which update_event writes first in every change it makes
  (whichever settings change: a name, maxPerBooking, promotion or offerTtlSeconds change had no entry
  at all, and one change may write both `sales_closed` and `capacity_changed`). It concerns the event,
  so it names no booking (CHECK subject_known), and flask check replays it as a no-op.
- The webhook trigger makes `event_updated` event.updated and `event_cancelled` event.cancelled, whose
  message has no booking (the join to bookings is a left join); `capacity_changed` and `sales_*` still
  send nothing of their own, so a change is one event.updated.
- The dispatcher holds an event's message back while an earlier one of the same event is pending
  (app/notifications/store.py, CLAIM); a partial index of the pending messages without a booking,
  `ix_webhook_messages_pending_event`, makes that an exact probe (docs/webhooks.md has the figures).

Downgrade refuses while the ledger holds an `event_updated` entry, which the schema before it cannot
represent; deleting them would lose the record of each change (docs/organisers.md, "The ledger").
"""

import sqlalchemy as sa
from alembic import op

from app.database.functions import create_or_replace

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# The definitions this revision installs, frozen (app/database/functions.py); each is its
# app/booking/sql/<function>.sql file as of this revision, and *_BEFORE as of 0014 (0013 for
# update_event, 0011 for the trigger).
UPDATE_EVENT = """
CREATE OR REPLACE FUNCTION update_event(p_event_id uuid, p_request_id text, p_name text, p_total_tickets integer,
                                        p_max_per_booking integer, p_sales_open boolean, p_promotion text,
                                        p_offer_ttl_seconds integer)
RETURNS TABLE (outcome text, event_row events, promoted_ids uuid[], promoted_user_ids text[],
               promoted_quantities integer[], promoted_created_ats timestamptz[], promoted_updated_ats timestamptz[],
               promoted_offer_expires_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    ev events%ROWTYPE;
    total integer;
    available integer;  -- the event's, once the new total applies
    promoted_tickets integer;
    -- Read once the lock is held, so that an event's changes are stamped in the order the lock served them.
    changed_at timestamptz;
BEGIN
    SELECT * INTO ev FROM events e WHERE e.id = p_event_id FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'event_not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    event_row := ev;
    SELECT '{}', '{}', '{}', '{}', '{}', 0  -- nobody promoted, unless a raise below does
      INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats, promoted_updated_ats,
           promoted_tickets;
    outcome := CASE WHEN ev.status = 'cancelled' THEN 'event_cancelled' ELSE 'ok' END;
    total := coalesce(p_total_tickets, ev.total_tickets);
    IF outcome = 'ok' AND total < ev.total_tickets - ev.available_tickets THEN
        outcome := 'capacity_below_booked';
    END IF;
    -- Quantities are at most 100 (a CHECK), so only a total below that can be too small for an entry.
    IF outcome = 'ok' AND total < 100 AND EXISTS (
           SELECT 1 FROM bookings b WHERE b.event_id = p_event_id AND b.status = 'waiting' AND b.quantity > total) THEN
        outcome := 'capacity_below_waiting';
    END IF;
    IF outcome <> 'ok' OR (coalesce(p_name, ev.name) IS NOT DISTINCT FROM ev.name AND total = ev.total_tickets
                           AND coalesce(p_max_per_booking, ev.max_per_booking) = ev.max_per_booking
                           AND coalesce(p_sales_open, ev.sales_open) = ev.sales_open
                           AND coalesce(p_promotion, ev.promotion) = ev.promotion
                           AND coalesce(p_offer_ttl_seconds, ev.offer_ttl_seconds) = ev.offer_ttl_seconds) THEN
        RETURN NEXT;
        RETURN;
    END IF;
    changed_at := clock_timestamp();
    available := ev.available_tickets + total - ev.total_tickets;
    promoted_offer_expires_at := offer_deadline(coalesce(p_promotion, ev.promotion),
                                                coalesce(p_offer_ttl_seconds, ev.offer_ttl_seconds), changed_at);
    -- Only a raise frees tickets: after a cut, or with the same total, the head still does not fit.
    IF total > ev.total_tickets THEN
        SELECT * INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats,
                      promoted_updated_ats, promoted_tickets
          FROM promote_waiting(p_event_id, available, changed_at, promoted_offer_expires_at);
    END IF;
    -- The event row first, then the ledger: the webhook trigger snapshots the event at each entry.
    UPDATE events e
       SET name = coalesce(p_name, e.name),
           total_tickets = total,
           available_tickets = available - promoted_tickets,
           max_per_booking = coalesce(p_max_per_booking, e.max_per_booking),
           sales_open = coalesce(p_sales_open, e.sales_open),
           promotion = coalesce(p_promotion, e.promotion),
           offer_ttl_seconds = coalesce(p_offer_ttl_seconds, e.offer_ttl_seconds),
           waiting_count = e.waiting_count - cardinality(promoted_ids),
           waiting_tickets = e.waiting_tickets - promoted_tickets,
           queue_promoted_entries = e.queue_promoted_entries + cardinality(promoted_ids),
           queue_promoted_tickets = e.queue_promoted_tickets + promoted_tickets,
           updated_at = changed_at
     WHERE e.id = p_event_id
    RETURNING e.* INTO event_row;
    INSERT INTO booking_events (event_id, kind, request_id, created_at, total_tickets_from, total_tickets_to)
    SELECT p_event_id, change.kind, p_request_id, changed_at, change.total_from, change.total_to
      FROM (VALUES (0, 'event_updated', NULL::integer, NULL::integer, true),
                   (1, CASE WHEN p_sales_open THEN 'sales_opened' ELSE 'sales_closed' END, NULL, NULL,
                    p_sales_open IS DISTINCT FROM ev.sales_open AND p_sales_open IS NOT NULL),
                   (2, 'capacity_changed', ev.total_tickets, total, total <> ev.total_tickets))
           AS change (step, kind, total_from, total_to, happened)
     WHERE change.happened
     ORDER BY change.step;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
    SELECT p_event_id, p.id, p.user_id, CASE WHEN promoted_offer_expires_at IS NULL THEN 'promoted' ELSE 'offered' END,
           p_request_id, p.quantity, changed_at
      FROM unnest(promoted_ids, promoted_user_ids, promoted_quantities) WITH ORDINALITY AS p (id, user_id, quantity, step)
     ORDER BY p.step;
    RETURN NEXT;
END
$$;
"""
ENQUEUE_WEBHOOK_MESSAGES = """
CREATE OR REPLACE FUNCTION enqueue_webhook_messages() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_messages (webhook_id, ledger_seq, event_id, booking_id, type, booking, event, occurred_at)
    SELECT w.id, NEW.seq, NEW.event_id, NEW.booking_id, m.type,
           to_jsonb(b) || jsonb_build_object(
               'waiting_position', CASE WHEN b.status = 'waiting' THEN e.waiting_count END,
               'tickets_ahead', CASE WHEN b.status = 'waiting' THEN e.waiting_tickets - b.quantity END),
           to_jsonb(e), NEW.created_at
      FROM (SELECT CASE NEW.kind WHEN 'booked' THEN 'booking.confirmed'
                                 WHEN 'waitlisted' THEN 'booking.waitlisted'
                                 WHEN 'promoted' THEN 'booking.promoted'
                                 WHEN 'offered' THEN 'booking.offered'
                                 WHEN 'accepted' THEN 'booking.confirmed'
                                 WHEN 'cancelled' THEN 'booking.cancelled'
                                 WHEN 'declined' THEN 'booking.cancelled'
                                 WHEN 'expired' THEN 'booking.cancelled'
                                 WHEN 'event_updated' THEN 'event.updated'
                                 WHEN 'event_cancelled' THEN 'event.cancelled' END AS type) m
      JOIN webhooks w ON w.disabled_at IS NULL
                     AND (w.event_id IS NULL OR w.event_id = NEW.event_id)
                     AND (w.types IS NULL OR m.type = ANY (w.types))
      JOIN events e ON e.id = NEW.event_id
      LEFT JOIN bookings b ON b.event_id = NEW.event_id AND b.id = NEW.booking_id
     WHERE m.type IS NOT NULL;
    RETURN NULL;
END
$$
"""
UPDATE_EVENT_BEFORE = """
CREATE OR REPLACE FUNCTION update_event(p_event_id uuid, p_request_id text, p_name text, p_total_tickets integer,
                                        p_max_per_booking integer, p_sales_open boolean, p_promotion text,
                                        p_offer_ttl_seconds integer)
RETURNS TABLE (outcome text, event_row events, promoted_ids uuid[], promoted_user_ids text[],
               promoted_quantities integer[], promoted_created_ats timestamptz[], promoted_updated_ats timestamptz[],
               promoted_offer_expires_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    ev events%ROWTYPE;
    total integer;
    available integer;  -- the event's, once the new total applies
    promoted_tickets integer;
    -- Read once the lock is held, so that an event's changes are stamped in the order the lock served them.
    changed_at timestamptz;
BEGIN
    SELECT * INTO ev FROM events e WHERE e.id = p_event_id FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'event_not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    event_row := ev;
    SELECT '{}', '{}', '{}', '{}', '{}', 0  -- nobody promoted, unless a raise below does
      INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats, promoted_updated_ats,
           promoted_tickets;
    outcome := CASE WHEN ev.status = 'cancelled' THEN 'event_cancelled' ELSE 'ok' END;
    total := coalesce(p_total_tickets, ev.total_tickets);
    IF outcome = 'ok' AND total < ev.total_tickets - ev.available_tickets THEN
        outcome := 'capacity_below_booked';
    END IF;
    -- Quantities are at most 100 (a CHECK), so only a total below that can be too small for an entry.
    IF outcome = 'ok' AND total < 100 AND EXISTS (
           SELECT 1 FROM bookings b WHERE b.event_id = p_event_id AND b.status = 'waiting' AND b.quantity > total) THEN
        outcome := 'capacity_below_waiting';
    END IF;
    IF outcome <> 'ok' OR (coalesce(p_name, ev.name) IS NOT DISTINCT FROM ev.name AND total = ev.total_tickets
                           AND coalesce(p_max_per_booking, ev.max_per_booking) = ev.max_per_booking
                           AND coalesce(p_sales_open, ev.sales_open) = ev.sales_open
                           AND coalesce(p_promotion, ev.promotion) = ev.promotion
                           AND coalesce(p_offer_ttl_seconds, ev.offer_ttl_seconds) = ev.offer_ttl_seconds) THEN
        RETURN NEXT;
        RETURN;
    END IF;
    changed_at := clock_timestamp();
    available := ev.available_tickets + total - ev.total_tickets;
    promoted_offer_expires_at := offer_deadline(coalesce(p_promotion, ev.promotion),
                                                coalesce(p_offer_ttl_seconds, ev.offer_ttl_seconds), changed_at);
    -- Only a raise frees tickets: after a cut, or with the same total, the head still does not fit.
    IF total > ev.total_tickets THEN
        SELECT * INTO promoted_ids, promoted_user_ids, promoted_quantities, promoted_created_ats,
                      promoted_updated_ats, promoted_tickets
          FROM promote_waiting(p_event_id, available, changed_at, promoted_offer_expires_at);
    END IF;
    -- The event row first, then the ledger: the webhook trigger snapshots the event at each entry.
    UPDATE events e
       SET name = coalesce(p_name, e.name),
           total_tickets = total,
           available_tickets = available - promoted_tickets,
           max_per_booking = coalesce(p_max_per_booking, e.max_per_booking),
           sales_open = coalesce(p_sales_open, e.sales_open),
           promotion = coalesce(p_promotion, e.promotion),
           offer_ttl_seconds = coalesce(p_offer_ttl_seconds, e.offer_ttl_seconds),
           waiting_count = e.waiting_count - cardinality(promoted_ids),
           waiting_tickets = e.waiting_tickets - promoted_tickets,
           queue_promoted_entries = e.queue_promoted_entries + cardinality(promoted_ids),
           queue_promoted_tickets = e.queue_promoted_tickets + promoted_tickets,
           updated_at = changed_at
     WHERE e.id = p_event_id
    RETURNING e.* INTO event_row;
    INSERT INTO booking_events (event_id, kind, request_id, created_at, total_tickets_from, total_tickets_to)
    SELECT p_event_id, change.kind, p_request_id, changed_at, change.total_from, change.total_to
      FROM (VALUES (1, CASE WHEN p_sales_open THEN 'sales_opened' ELSE 'sales_closed' END, NULL::integer, NULL::integer,
                    p_sales_open IS DISTINCT FROM ev.sales_open AND p_sales_open IS NOT NULL),
                   (2, 'capacity_changed', ev.total_tickets, total, total <> ev.total_tickets))
           AS change (step, kind, total_from, total_to, happened)
     WHERE change.happened
     ORDER BY change.step;
    INSERT INTO booking_events (event_id, booking_id, user_id, kind, request_id, quantity, created_at)
    SELECT p_event_id, p.id, p.user_id, CASE WHEN promoted_offer_expires_at IS NULL THEN 'promoted' ELSE 'offered' END,
           p_request_id, p.quantity, changed_at
      FROM unnest(promoted_ids, promoted_user_ids, promoted_quantities) WITH ORDINALITY AS p (id, user_id, quantity, step)
     ORDER BY p.step;
    RETURN NEXT;
END
$$;
"""
ENQUEUE_WEBHOOK_MESSAGES_BEFORE = """
CREATE OR REPLACE FUNCTION enqueue_webhook_messages() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_messages (webhook_id, ledger_seq, event_id, booking_id, type, booking, event, occurred_at)
    SELECT w.id, NEW.seq, NEW.event_id, NEW.booking_id, m.type,
           to_jsonb(b) || jsonb_build_object(
               'waiting_position', CASE WHEN b.status = 'waiting' THEN e.waiting_count END,
               'tickets_ahead', CASE WHEN b.status = 'waiting' THEN e.waiting_tickets - b.quantity END),
           to_jsonb(e), NEW.created_at
      FROM (SELECT CASE NEW.kind WHEN 'booked' THEN 'booking.confirmed'
                                 WHEN 'waitlisted' THEN 'booking.waitlisted'
                                 WHEN 'promoted' THEN 'booking.promoted'
                                 WHEN 'offered' THEN 'booking.offered'
                                 WHEN 'accepted' THEN 'booking.confirmed'
                                 WHEN 'cancelled' THEN 'booking.cancelled'
                                 WHEN 'declined' THEN 'booking.cancelled'
                                 WHEN 'expired' THEN 'booking.cancelled' END AS type) m
      JOIN webhooks w ON w.disabled_at IS NULL
                     AND (w.event_id IS NULL OR w.event_id = NEW.event_id)
                     AND (w.types IS NULL OR m.type = ANY (w.types))
      JOIN events e ON e.id = NEW.event_id
      JOIN bookings b ON b.event_id = NEW.event_id AND b.id = NEW.booking_id
     WHERE m.type IS NOT NULL;
    RETURN NULL;
END
$$
"""

BOOKING_KINDS = ("booked", "waitlisted", "cancelled", "reduced", "promoted")
ORGANISER_KINDS_BEFORE = ("capacity_changed", "sales_closed", "sales_opened", "event_cancelled")
ORGANISER_KINDS = ORGANISER_KINDS_BEFORE + ("event_updated",)
OFFER_KINDS = ("offered", "accepted", "declined", "expired")
NEW_ENTRIES = "SELECT count(*) FROM booking_events WHERE kind = 'event_updated'"


def _kinds(kinds) -> str:
    return "kind IN (" + ", ".join(f"'{kind}'" for kind in kinds) + ")"


def _subject_known(organiser_kinds) -> str:
    """An organiser's entry concerns the event; a booking's names the booking, its user and its tickets."""
    return (
        f"CASE WHEN {_kinds(organiser_kinds)} THEN booking_id IS NULL AND user_id IS NULL AND quantity IS NULL "
        "ELSE booking_id IS NOT NULL AND user_id IS NOT NULL AND quantity IS NOT NULL END"
    )


def upgrade() -> None:
    _replace_ledger_checks(ORGANISER_KINDS)
    create_or_replace(UPDATE_EVENT, ENQUEUE_WEBHOOK_MESSAGES)
    op.create_index(
        "ix_webhook_messages_pending_event",
        "webhook_messages",
        ["webhook_id", "event_id", "ledger_seq"],
        postgresql_where=sa.text("state = 'pending' AND booking_id IS NULL"),
    )


def downgrade() -> None:
    entries = op.get_bind().execute(sa.text(NEW_ENTRIES)).scalar_one()
    if entries:
        raise RuntimeError(
            f"cannot downgrade below 0015: the ledger holds {entries} event_updated entries (one per organiser's "
            "change), which the schema before it cannot represent; nothing was changed."
        )
    op.drop_index("ix_webhook_messages_pending_event", "webhook_messages")
    create_or_replace(UPDATE_EVENT_BEFORE, ENQUEUE_WEBHOOK_MESSAGES_BEFORE)
    _replace_ledger_checks(ORGANISER_KINDS_BEFORE)


def _replace_ledger_checks(organiser_kinds) -> None:
    checks = {
        "kind_known": _kinds(BOOKING_KINDS + organiser_kinds + OFFER_KINDS),
        "subject_known": _subject_known(organiser_kinds),
    }
    for name, condition in checks.items():
        op.drop_constraint(op.f(f"ck_booking_events_{name}"), "booking_events", type_="check")
        op.create_check_constraint(op.f(f"ck_booking_events_{name}"), "booking_events", condition)
