"""The webhook admin use cases: plain values in, model objects out, one transaction each.

The writes are `services.Write`s like the bookings' (app/booking/services.py), so that they run the one
way every write runs (app/web/idempotency.py, `perform`): alone, or with an Idempotency-Key in the key's
transaction. What registering needs from the configuration, `Registration`, is built once per app by
create_app (the web tier's `webhook_admin` extension, app/web/webhook_admin.py), not per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from uuid import UUID

from sqlalchemy import Connection, Engine, Row

from app.booking.domain import EventNotFound, parse_event_id
from app.booking.services import Write
from app.notifications import store
from app.notifications.destinations import check_url
from app.notifications.model import (
    Delivery,
    DeliveryNotFound,
    DeliveryPage,
    Webhook,
    WebhookNotFound,
    WebhookPage,
    parse_message_key,
)
from app.notifications.secrets import SecretBox, new_secret


@dataclass(frozen=True)
class Registration:
    """What registering a webhook needs from the configuration (WEBHOOK_SECRET_KEY, WEBHOOK_ALLOW_PRIVATE)."""

    secret_keys: tuple[str, ...]
    allow_private: bool

    @cached_property
    def box(self) -> SecretBox:
        """Built at the first use, once: an app without a key starts, and refuses only to register."""
        return SecretBox(self.secret_keys)


@dataclass(frozen=True)
class RegisterWebhook(Write[Webhook]):
    """Register `url`; the reply is the only place its secret is ever shown.

    The destination is checked (and its host resolved) inside the write: a replay of a keyed registration
    returns its first answer whatever the host resolves to now.
    """

    registration: Registration
    url: str
    types: list[str] | None = None
    event_id: str | None = None

    def __call__(self, conn: Connection) -> Webhook:
        check_url(self.url, self.registration.allow_private)
        event_uuid = parse_event_id(self.event_id) if self.event_id is not None else None
        secret = new_secret()
        row = store.insert_webhook(
            conn, self.url, _distinct(self.types), event_uuid, self.registration.box.seal(secret)
        )
        if row is None:
            raise EventNotFound(self.event_id)
        return _webhook(row, secret)

    def sealed(self, body: bytes) -> bytes:
        """The reply shows the secret: stored with its key only as ciphertext, like the webhook's own copy."""
        return self.registration.box.seal(body.decode())

    def unsealed(self, stored: bytes) -> bytes:
        return self.registration.box.open(stored).encode()


def list_webhooks(engine: Engine, after: int, limit: int) -> WebhookPage:
    with engine.connect() as conn:
        rows = store.list_webhooks(conn, after, limit + 1)  # one more tells whether a page follows
    page, next_after = _page(rows, limit)
    return WebhookPage([_webhook(row) for row in page], next_after)


def get_webhook(engine: Engine, webhook_id: str) -> Webhook:
    with engine.connect() as conn:
        row = store.get_webhook(conn, _webhook_uuid(webhook_id))
    if row is None:
        raise WebhookNotFound(webhook_id)
    return _webhook(row)


@dataclass(frozen=True)
class DeleteWebhook(Write[None]):
    """Remove the webhook and its messages: nothing more is sent to it."""

    webhook_id: str

    def __call__(self, conn: Connection) -> None:
        if not store.delete_webhook(conn, _webhook_uuid(self.webhook_id)):
            raise WebhookNotFound(self.webhook_id)


def list_deliveries(engine: Engine, webhook_id: str, after: int, limit: int, state: str | None) -> DeliveryPage:
    webhook_uuid = _webhook_uuid(webhook_id)
    with engine.connect() as conn:
        if store.get_webhook(conn, webhook_uuid) is None:
            raise WebhookNotFound(webhook_id)
        rows = store.list_deliveries(conn, webhook_uuid, after, limit + 1, state)
    page, next_after = _page(rows, limit)
    return DeliveryPage([Delivery(**row._mapping) for row in page], next_after)


@dataclass(frozen=True)
class RetryDelivery(Write[Delivery]):
    """Send the message again now, whatever became of it; a failure after that fails it again."""

    webhook_id: str
    message_key: str

    def __call__(self, conn: Connection) -> Delivery:
        webhook_uuid, message_id = _webhook_uuid(self.webhook_id), parse_message_key(self.message_key)
        if store.get_webhook(conn, webhook_uuid) is None:
            raise WebhookNotFound(self.webhook_id)
        row = store.retry_delivery(conn, webhook_uuid, message_id) if message_id else None
        if row is None:
            raise DeliveryNotFound(self.message_key)
        return Delivery(**row._mapping)


def _webhook_uuid(webhook_id: str) -> UUID:
    try:
        return UUID(webhook_id)
    except ValueError:
        raise WebhookNotFound(webhook_id) from None


def _webhook(row: Row, secret: str | None = None) -> Webhook:
    fields = {name: value for name, value in row._mapping.items() if name != "seq"}
    return Webhook(**fields, secret=secret)


def _page(rows: list[Row], limit: int) -> tuple[list[Row], int | None]:
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], rows[limit - 1].seq


def _distinct(types: list[str] | None) -> list[str] | None:
    return None if types is None else sorted(set(types))
