"""What the webhook feature speaks in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from app.booking.domain import DomainError, Refusal

# Every type the contract names; the webhook trigger (enqueue_webhook_messages.sql) maps the ledger's
# kinds to them: a booking's changes, offers and holds to booking.*, an organiser's and a draw's to event.*.
MESSAGE_TYPES = (
    "booking.confirmed",
    "booking.waitlisted",
    "booking.promoted",
    "booking.offered",
    "booking.held",
    "booking.cancelled",
    "event.updated",
    "event.cancelled",
    "event.sales_opened",  # a sale's draw done (issue 27)
)
MESSAGE_ID_PREFIX = "msg_"
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class Webhook:
    id: UUID
    url: str
    types: list[str] | None
    event_id: UUID | None
    disabled_at: datetime | None
    disabled_reason: str | None
    created_at: datetime
    secret: str | None = None  # only when just created: the one reply that shows it

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None


@dataclass(frozen=True)
class WebhookPage:
    webhooks: list[Webhook]
    next_after: int | None


@dataclass(frozen=True)
class Delivery:
    """One message to one webhook, and how its delivery stands."""

    seq: int
    message_id: UUID
    type: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime | None  # None once delivered or failed
    occurred_at: datetime
    delivered_at: datetime | None

    @property
    def message_key(self) -> str:
        return message_key(self.message_id)


@dataclass(frozen=True)
class DeliveryPage:
    deliveries: list[Delivery]
    next_after: int | None


def message_key(message_id: UUID) -> str:
    """The id a receiver sees (body `id`, `webhook-id` header): `msg_` and 32 hex digits."""
    return MESSAGE_ID_PREFIX + message_id.hex


def parse_message_key(key: str) -> UUID | None:
    if not key.startswith(MESSAGE_ID_PREFIX):
        return None
    try:
        return UUID(hex=key[len(MESSAGE_ID_PREFIX) :])
    except ValueError:
        return None


class WebhookNotFound(DomainError):
    code, status, about, detail = "webhook_not_found", 404, "webhook_id", "no webhook with id {!r}"


class DeliveryNotFound(DomainError):
    code, status, about, detail = "delivery_not_found", 404, "message_id", "this webhook has no message {!r}"


class UnsafeDestination(Refusal):
    """A URL the SSRF guard refuses: answered as 400 invalid_request, with the reason under `url`."""

    code, status = "invalid_request", 400

    def field_errors(self) -> dict[str, list[str]]:
        return {"url": [str(self)]}
