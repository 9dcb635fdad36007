"""The SQL of webhooks: registrations, the outbox rows (messages) and their delivery state.

Messages are written by the trigger of migration 0009, in the transaction of each change; nothing
here writes one. The dispatcher claims them with FOR UPDATE SKIP LOCKED and a lease (`CLAIM`), so any
number of dispatchers share the work and a dispatcher that dies mid-send leaves its claim to expire.
"""

from __future__ import annotations

from operator import attrgetter
from typing import NamedTuple
from uuid import UUID

from sqlalchemy import Connection, Row, text

from app.database.tables import PROBED_PENDING

RETRY, RELEASED = "retry", "released"  # the outcomes, beside model.DELIVERED and FAILED, that leave a message pending

WEBHOOK_COLUMNS = "id, seq, url, types, event_id, disabled_at, disabled_reason, created_at"
DELIVERY_COLUMNS = (
    "seq, message_id, type, state, attempts, last_status, last_error, occurred_at, delivered_at, "
    "CASE WHEN state = 'pending' THEN next_attempt_at END AS next_attempt_at"
)

# No row when `event_id` names no event: the caller tells 404 from the insert itself.
INSERT_WEBHOOK = text(f"""
INSERT INTO webhooks (url, types, event_id, secret_ciphertext)
SELECT :url, :types, :event_id, :ciphertext
 WHERE CAST(:event_id AS uuid) IS NULL OR EXISTS (SELECT 1 FROM events WHERE id = :event_id)
RETURNING {WEBHOOK_COLUMNS}
""")
LIST_WEBHOOKS = text(f"SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE seq > :after ORDER BY seq LIMIT :limit")
GET_WEBHOOK = text(f"SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = :id")
DELETE_WEBHOOK = text("DELETE FROM webhooks WHERE id = :id RETURNING id")
LIST_DELIVERIES = text(f"""
SELECT {DELIVERY_COLUMNS} FROM webhook_messages
 WHERE webhook_id = :webhook_id AND seq > :after AND (CAST(:state AS text) IS NULL OR state = :state)
 ORDER BY seq LIMIT :limit
""")
# By hand: a failed (or delivered) message is tried again now; one more failure fails it again.
# A retry by hand keeps a live lease: a message being sent waits for that send to end (its outcome is
# recorded as usual), so that one webhook-id is never in flight twice at once.
RETRY_DELIVERY = text(f"""
UPDATE webhook_messages
   SET state = 'pending', next_attempt_at = now(), delivered_at = NULL
 WHERE webhook_id = :webhook_id AND message_id = :message_id
RETURNING {DELIVERY_COLUMNS}
""")

# Enabled webhooks with a message due: sent now, not claimed by a live lease.
DUE = "m.state = 'pending' AND m.next_attempt_at <= now() AND (m.lease_until IS NULL OR m.lease_until < now())"
DUE_WEBHOOKS = text(f"""
SELECT w.id, w.url, w.secret_ciphertext FROM webhooks w
 WHERE w.disabled_at IS NULL
   AND EXISTS (SELECT 1 FROM webhook_messages m WHERE m.webhook_id = w.id AND {DUE})
""")
# Up to :limit of a webhook's due messages, oldest change first, leased for :lease_s seconds. A message
# waits while an earlier one about the same booking is still pending (per-booking order), leased or not;
# an event's message (no booking: event.updated, event.cancelled) while an earlier one of the same event
# is (per-event order). Each is an exact probe per candidate, of ix_webhook_messages_pending and
# _pending_event, whatever the statistics say. A queue table's usually say that almost nothing is
# pending (a new outbox, or one analysed while quiet), and on them the planner made the first an
# anti-join that scanned all the webhook's pending messages per candidate, by its own index or the
# queue's: OFFSET 0 keeps it a subquery run per candidate (as the OR keeps the second), and "pending" is
# spelled as only those two indexes spell it (migration 0016).
CLAIM = text(f"""
UPDATE webhook_messages c
   SET lease_until = now() + make_interval(secs => :lease_s), attempts = c.attempts + 1
 WHERE (c.event_id, c.seq) IN (
       SELECT m.event_id, m.seq FROM webhook_messages m
        WHERE m.webhook_id = :webhook_id AND {DUE}
          AND NOT EXISTS (SELECT 1 FROM webhook_messages p
                           WHERE p.webhook_id = m.webhook_id AND p.booking_id = m.booking_id
                             AND p.{PROBED_PENDING} AND p.ledger_seq < m.ledger_seq
                          OFFSET 0)
          AND (m.booking_id IS NOT NULL OR NOT EXISTS (
               SELECT 1 FROM webhook_messages p
                WHERE p.webhook_id = m.webhook_id AND p.booking_id IS NULL AND p.event_id = m.event_id
                  AND p.{PROBED_PENDING} AND p.ledger_seq < m.ledger_seq))
        ORDER BY m.ledger_seq
        LIMIT :limit
        FOR UPDATE SKIP LOCKED)
RETURNING c.event_id, c.seq, c.ledger_seq, c.message_id, c.type, c.booking, c.event, c.occurred_at, c.attempts
""")
# The outcomes of a sender's batch, one statement for them all. Each is recorded only by the claim that
# made this attempt (`attempts` still ours): a dispatcher whose lease ran out and whose message was
# claimed again does not overwrite the newer try. A message the sender did not try (RELEASED: its batch
# stopped early) is given back as it was before the claim: its lease cleared, its attempt not counted.
RECORD_OUTCOMES = text("""
UPDATE webhook_messages m
   SET state = CASE o.kind WHEN 'delivered' THEN 'delivered' WHEN 'failed' THEN 'failed' ELSE 'pending' END,
       delivered_at = CASE WHEN o.kind = 'delivered' THEN now() END,
       last_status = CASE WHEN o.kind = 'released' THEN m.last_status ELSE o.status END,
       last_error = CASE WHEN o.kind = 'released' THEN m.last_error ELSE o.error END,
       next_attempt_at = CASE WHEN o.kind = 'retry' THEN now() + make_interval(secs => o.delay_s)
                              ELSE m.next_attempt_at END,
       attempts = m.attempts - CASE WHEN o.kind = 'released' THEN 1 ELSE 0 END,
       lease_until = NULL
  FROM unnest(CAST(:event_ids AS uuid[]), CAST(:seqs AS bigint[]), CAST(:attempts AS int[]),
              CAST(:kinds AS text[]), CAST(:statuses AS int[]), CAST(:errors AS text[]), CAST(:delays AS float8[]))
       AS o(event_id, seq, attempts, kind, status, error, delay_s)
 WHERE m.event_id = o.event_id AND m.seq = o.seq AND m.attempts = o.attempts
   AND (o.kind = 'delivered' OR m.state = 'pending')
""")
DISABLE_WEBHOOK = text("""
UPDATE webhooks SET disabled_at = now(), disabled_reason = :reason WHERE id = :id AND disabled_at IS NULL
""")
# A batch at a time, so that no transaction holds many rows; SKIP LOCKED passes over a claim in progress.
PURGE_DELIVERED = text("""
DELETE FROM webhook_messages WHERE (event_id, seq) IN (
       SELECT event_id, seq FROM webhook_messages
        WHERE state = 'delivered' AND delivered_at < now() - make_interval(secs => :retention_s)
        LIMIT :batch FOR UPDATE SKIP LOCKED)
""")
# The lag: how long the oldest message still to send (to an enabled webhook) has waited, in seconds.
OLDEST_PENDING_AGE = text("""
SELECT coalesce(extract(epoch FROM now() - min(m.occurred_at)), 0) FROM webhook_messages m
  JOIN webhooks w ON w.id = m.webhook_id AND w.disabled_at IS NULL
 WHERE m.state = 'pending'
""")
HEARTBEAT = text("""
INSERT INTO webhook_dispatchers (name) VALUES (:name)
ON CONFLICT (name) DO UPDATE SET heartbeat_at = now()
""")
FORGET_DISPATCHER = text("DELETE FROM webhook_dispatchers WHERE name = :name")


def insert_webhook(conn: Connection, url: str, types, event_id: UUID | None, ciphertext: bytes) -> Row | None:
    parameters = {"url": url, "types": types, "event_id": event_id, "ciphertext": ciphertext}
    return conn.execute(INSERT_WEBHOOK, parameters).one_or_none()


def list_webhooks(conn: Connection, after: int, limit: int) -> list[Row]:
    return conn.execute(LIST_WEBHOOKS, {"after": after, "limit": limit}).all()


def get_webhook(conn: Connection, webhook_id: UUID) -> Row | None:
    return conn.execute(GET_WEBHOOK, {"id": webhook_id}).one_or_none()


def delete_webhook(conn: Connection, webhook_id: UUID) -> bool:
    return conn.execute(DELETE_WEBHOOK, {"id": webhook_id}).one_or_none() is not None


def list_deliveries(conn: Connection, webhook_id: UUID, after: int, limit: int, state: str | None) -> list[Row]:
    parameters = {"webhook_id": webhook_id, "after": after, "limit": limit, "state": state}
    return conn.execute(LIST_DELIVERIES, parameters).all()


def retry_delivery(conn: Connection, webhook_id: UUID, message_id: UUID) -> Row | None:
    return conn.execute(RETRY_DELIVERY, {"webhook_id": webhook_id, "message_id": message_id}).one_or_none()


def due_webhooks(conn: Connection) -> list[Row]:
    return conn.execute(DUE_WEBHOOKS).all()


def claim(conn: Connection, webhook_id: UUID, limit: int, lease_s: float) -> list[Row]:
    """The messages claimed, oldest change first (an UPDATE's RETURNING keeps no order)."""
    claimed = conn.execute(CLAIM, {"webhook_id": webhook_id, "limit": limit, "lease_s": lease_s}).all()
    return sorted(claimed, key=attrgetter("ledger_seq"))


class Recorded(NamedTuple):
    """What came of one claimed message: its `kind` (DELIVERED, RETRY, FAILED, or RELEASED: not tried)."""

    message: Row
    kind: str
    status: int | None = None
    error: str | None = None
    delay_s: float | None = None  # RETRY: the next try is this many seconds from now


def record_outcomes(conn: Connection, recorded: list[Recorded]) -> None:
    """Record a batch's outcomes; the key is the message's (event_id first, as sharded) and its attempt."""
    conn.execute(
        RECORD_OUTCOMES,
        {
            "event_ids": [str(r.message.event_id) for r in recorded],
            "seqs": [r.message.seq for r in recorded],
            "attempts": [r.message.attempts for r in recorded],
            "kinds": [r.kind for r in recorded],
            "statuses": [r.status for r in recorded],
            "errors": [r.error for r in recorded],
            "delays": [r.delay_s for r in recorded],
        },
    )


def disable_webhook(conn: Connection, webhook_id: UUID, reason: str) -> None:
    conn.execute(DISABLE_WEBHOOK, {"id": webhook_id, "reason": reason})


def purge_delivered(conn: Connection, retention_s: float, batch: int) -> int:
    return conn.execute(PURGE_DELIVERED, {"retention_s": retention_s, "batch": batch}).rowcount


def oldest_pending_age_s(conn: Connection) -> float:
    return float(conn.execute(OLDEST_PENDING_AGE).scalar_one())


def heartbeat(conn: Connection, name: str) -> None:
    conn.execute(HEARTBEAT, {"name": name})


def forget_dispatcher(conn: Connection, name: str) -> None:
    conn.execute(FORGET_DISPATCHER, {"name": name})
