"""The dispatcher's order probes get indexes that only they can use.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01

The claim (app/notifications/store.py, CLAIM) holds a message back while an earlier one about the same
booking (or, for an event's message, the same event) is pending: meant as an exact probe of
`ix_webhook_messages_pending` (or `_pending_event`) per candidate. On an outbox whose statistics say
that almost nothing is pending (a new one, or one last analysed while quiet: the usual state of a queue
table at the start of a sale), every plan is estimated at one row, and the planner made the probe a scan
of all the webhook's pending messages per candidate, through `ix_webhook_messages_due` or through the
probe's own index with the webhook alone as its condition; a claim's cost grew with the backlog (17–60
ms at 5 000, docs/webhooks.md). The claim now keeps each probe a subquery per candidate, and these two
indexes spell their predicate `state NOT IN ('delivered', 'failed')`: the same rows (the CHECK allows
three states), but a predicate the queue's indexes do not satisfy, so that a probe, asked the same way,
can only be the exact one. The columns are unchanged.

For operators: the indexes are dropped and built again inside the migration's transaction. The build
reads all of `webhook_messages` (delivered messages are kept for WEBHOOK_RETENTION, 7 days by default)
while holding a lock that makes the webhook trigger, and so every booking of an event with a webhook,
wait: run it at a quiet hour, or shorten WEBHOOK_RETENTION first and let a dispatcher purge (it
deletes delivered messages past the retention every 10 s).
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

PROBES = {  # name: (columns, predicate beside the state)
    "ix_webhook_messages_pending": (["webhook_id", "booking_id", "ledger_seq"], None),
    "ix_webhook_messages_pending_event": (["webhook_id", "event_id", "ledger_seq"], "booking_id IS NULL"),
}


def upgrade() -> None:
    _recreate("state NOT IN ('delivered', 'failed')")


def downgrade() -> None:
    _recreate("state = 'pending'")


def _recreate(state: str) -> None:
    for name, (columns, beside) in PROBES.items():
        op.drop_index(name, "webhook_messages")
        predicate = f"{state} AND {beside}" if beside else state
        op.create_index(name, "webhook_messages", columns, postgresql_where=sa.text(predicate))
