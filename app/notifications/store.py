"""The SQL of webhooks: registrations, the outbox rows (messages) and their delivery state.

Messages are written by the trigger of migration 0009, in the transaction of each change; nothing
here writes one. The dispatcher claims them with FOR UPDATE SKIP LOCKED and a lease (`CLAIM`), so any
number of dispatchers share the work and a dispatcher that dies mid-send leaves its claim to expire.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import Connection, Row, text

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
RETRY_DELIVERY = text(f"""
UPDATE webhook_messages
   SET state = 'pending', next_attempt_at = now(), lease_until = NULL, delivered_at = NULL
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
# is (per-event order): an index probe each, ix_webhook_messages_pending and ix_webhook_messages_pending_event.
CLAIM = text(f"""
UPDATE webhook_messages c
   SET lease_until = now() + make_interval(secs => :lease_s), attempts = c.attempts + 1
 WHERE (c.event_id, c.seq) IN (
       SELECT m.event_id, m.seq FROM webhook_messages m
        WHERE m.webhook_id = :webhook_id AND {DUE}
          AND NOT EXISTS (SELECT 1 FROM webhook_messages p
                           WHERE p.webhook_id = m.webhook_id AND p.booking_id = m.booking_id
                             AND p.state = 'pending' AND p.ledger_seq < m.ledger_seq)
          AND (m.booking_id IS NOT NULL OR NOT EXISTS (
               SELECT 1 FROM webhook_messages p
                WHERE p.webhook_id = m.webhook_id AND p.booking_id IS NULL AND p.event_id = m.event_id
                  AND p.state = 'pending' AND p.ledger_seq < m.ledger_seq))
        ORDER BY m.ledger_seq
        LIMIT :limit
        FOR UPDATE SKIP LOCKED)
RETURNING c.event_id, c.seq, c.message_id, c.type, c.booking, c.event, c.occurred_at, c.attempts
""")
# Each outcome is recorded only by the claim that made this attempt (`attempts` still ours): a
# dispatcher whose lease ran out and whose message was claimed again does not overwrite the newer try.
RECORD_DELIVERED = text("""
UPDATE webhook_messages SET state = 'delivered', delivered_at = now(), last_status = :status, last_error = NULL,
       lease_until = NULL
 WHERE event_id = :event_id AND seq = :seq AND attempts = :attempts
""")
RECORD_RETRY = text("""
UPDATE webhook_messages SET last_status = :status, last_error = :error, lease_until = NULL,
       next_attempt_at = now() + make_interval(secs => :delay_s)
 WHERE event_id = :event_id AND seq = :seq AND attempts = :attempts AND state = 'pending'
""")
RECORD_FAILED = text("""
UPDATE webhook_messages SET state = 'failed', last_status = :status, last_error = :error, lease_until = NULL
 WHERE event_id = :event_id AND seq = :seq AND attempts = :attempts AND state = 'pending'
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
    return conn.execute(CLAIM, {"webhook_id": webhook_id, "limit": limit, "lease_s": lease_s}).all()


def record_delivered(conn: Connection, claimed: Row, status: int) -> None:
    conn.execute(RECORD_DELIVERED, {**_attempt(claimed), "status": status})


def record_retry(conn: Connection, claimed: Row, status: int | None, error: str | None, delay_s: float) -> None:
    conn.execute(RECORD_RETRY, {**_attempt(claimed), "status": status, "error": error, "delay_s": delay_s})


def record_failed(conn: Connection, claimed: Row, status: int | None, error: str | None) -> None:
    conn.execute(RECORD_FAILED, {**_attempt(claimed), "status": status, "error": error})


def _attempt(claimed: Row) -> dict:
    """The message's key (event_id first, as sharded) and the attempt this claim made."""
    return {"event_id": claimed.event_id, "seq": claimed.seq, "attempts": claimed.attempts}


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
