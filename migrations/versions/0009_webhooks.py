"""Webhooks: the registrations, and an outbox of messages written by the transaction of each change.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

A trigger on the ledger (`booking_events`) turns each change into one message per webhook that wants
it, in the transaction that makes the change: a change that rolls back leaves no message, one that
commits never loses its message. The booking functions are untouched. Each message row is also its
delivery state (attempts, last status, next try), which the dispatcher claims with
FOR UPDATE SKIP LOCKED (app/notifications/). Why an outbox table rather than a cursor over the ledger:
docs/webhooks.md, "Why an outbox table".

Sharded by event (docs/scaling.md), `webhook_messages` would be distributed by event_id like the
ledger, so the trigger writes to the shard it runs on; `webhooks` and `webhook_dispatchers` would be
reference tables, which is why `webhooks.event_id` has no foreign key (Citus allows none from a
reference table to a distributed one): the insert checks that the event exists instead.

The message keeps a snapshot of the booking and of the event as that change left them (`to_jsonb` of
their rows), so that a retry hours later still reports the change it was written for. A newly waiting
booking joins the back of the queue, so its position is the event's waiting count after the change.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from app.database.functions import create_or_replace

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Frozen copy (app/database/functions.py) of app/booking/sql/enqueue_webhook_messages.sql as of this revision.
ENQUEUE = """
-- enqueue_webhook_messages: the trigger on the ledger (booking_events) that turns each change into one
-- message per webhook that wants it, in the outbox `webhook_messages`, in the change's own transaction.
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). Each message keeps a snapshot of the booking and the event as the change left
-- them, so that a retry hours later still reports that change; a newly waiting booking joins the back
-- of the queue, so its position is the event's waiting count after the change, and the tickets ahead
-- of it are all the waiting tickets but its own. Ledger kinds and the message types they become; a
-- kind with no type (a partial cancel, `reduced`) sends nothing. event.* and booking.offered come with
-- their own changes.

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
                                 WHEN 'cancelled' THEN 'booking.cancelled' END AS type) m
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

TRIGGER = """
CREATE TRIGGER booking_events_to_webhooks AFTER INSERT ON booking_events
FOR EACH ROW EXECUTE FUNCTION enqueue_webhook_messages()
"""


def upgrade() -> None:
    _create_webhooks()
    _create_messages()
    op.create_table(
        "webhook_dispatchers",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_webhook_dispatchers")),
    )
    create_or_replace(ENQUEUE)
    op.execute(TRIGGER)


def _create_webhooks() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("types", ARRAY(sa.Text())),
        sa.Column("event_id", sa.Uuid()),
        sa.Column("secret_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True)),
        sa.Column("disabled_reason", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
        sa.UniqueConstraint("seq", name=op.f("uq_webhooks_seq")),
    )


def _create_messages() -> None:
    op.create_table(
        "webhook_messages",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("message_id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("webhook_id", sa.Uuid(), nullable=False),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("booking_id", sa.Uuid()),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("booking", JSONB()),
        sa.Column("event", JSONB(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_status", sa.SmallInteger()),
        sa.Column("last_error", sa.Text()),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("state IN ('pending', 'delivered', 'failed')", name=op.f("ck_webhook_messages_state_known")),
        sa.ForeignKeyConstraint(
            ["webhook_id"], ["webhooks.id"], name=op.f("fk_webhook_messages_webhook_id_webhooks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("event_id", "seq", name=op.f("pk_webhook_messages")),
    )
    op.create_index(op.f("ix_webhook_messages_webhook_id_seq"), "webhook_messages", ["webhook_id", "seq"])
    op.create_index(op.f("ix_webhook_messages_webhook_id_message_id"), "webhook_messages", ["webhook_id", "message_id"])
    op.create_index(
        "ix_webhook_messages_pending",
        "webhook_messages",
        ["webhook_id", "booking_id", "ledger_seq"],
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index(
        "ix_webhook_messages_queue",
        "webhook_messages",
        ["webhook_id", "ledger_seq"],
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index(
        "ix_webhook_messages_due",
        "webhook_messages",
        ["webhook_id", "next_attempt_at"],
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index(
        "ix_webhook_messages_delivered_at",
        "webhook_messages",
        ["delivered_at"],
        postgresql_where=sa.text("state = 'delivered'"),
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER booking_events_to_webhooks ON booking_events")
    op.execute("DROP FUNCTION enqueue_webhook_messages()")
    op.drop_table("webhook_dispatchers")
    op.drop_table("webhook_messages")
    op.drop_table("webhooks")
