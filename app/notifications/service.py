"""The webhook admin use cases: plain values in, model objects out, one transaction each."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import Engine, Row

from app.booking.domain import EventNotFound, parse_event_id
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


def create_webhook(
    engine: Engine, box: SecretBox, url: str, types: list[str] | None, event_id: str | None, allow_private: bool
) -> Webhook:
    """Register `url`; the reply is the only place its secret is ever shown."""
    check_url(url, allow_private)
    event_uuid = parse_event_id(event_id) if event_id is not None else None
    secret = new_secret()
    with engine.begin() as conn:
        row = store.insert_webhook(conn, url, _distinct(types), event_uuid, box.seal(secret))
    if row is None:
        raise EventNotFound(event_id)
    return _webhook(row, secret)


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


def delete_webhook(engine: Engine, webhook_id: str) -> None:
    """Remove the webhook and its messages: nothing more is sent to it."""
    with engine.begin() as conn:
        if not store.delete_webhook(conn, _webhook_uuid(webhook_id)):
            raise WebhookNotFound(webhook_id)


def list_deliveries(engine: Engine, webhook_id: str, after: int, limit: int, state: str | None) -> DeliveryPage:
    webhook_uuid = _webhook_uuid(webhook_id)
    with engine.connect() as conn:
        if store.get_webhook(conn, webhook_uuid) is None:
            raise WebhookNotFound(webhook_id)
        rows = store.list_deliveries(conn, webhook_uuid, after, limit + 1, state)
    page, next_after = _page(rows, limit)
    return DeliveryPage([Delivery(**row._mapping) for row in page], next_after)


def retry_delivery(engine: Engine, webhook_id: str, message_key: str) -> Delivery:
    """Send the message again now, whatever became of it; a failure after that fails it again."""
    webhook_uuid, message_id = _webhook_uuid(webhook_id), parse_message_key(message_key)
    with engine.begin() as conn:
        if store.get_webhook(conn, webhook_uuid) is None:
            raise WebhookNotFound(webhook_id)
        row = store.retry_delivery(conn, webhook_uuid, message_id) if message_id else None
    if row is None:
        raise DeliveryNotFound(message_key)
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
