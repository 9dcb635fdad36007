"""Marshmallow schemas of the webhook admin API (contract v2, "Notifications")."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.booking.representation import UtcDateTime
from app.notifications.model import DELIVERED, FAILED, MESSAGE_TYPES, PENDING
from app.web.schemas import HistoryQuery

MAX_URL_LENGTH = 2000


# http(s), a host (a name or an IPv4 address; an IPv6 receiver is registered by its name), a port
# 1..65535, then printable ASCII: stated as the OpenAPI `pattern`, and exactly what validation applies.
# Where the host may lead is the SSRF guard's question (app/notifications/destinations.py).
PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
URL_PATTERN = rf"^https?://[A-Za-z0-9.-]+(:{PORT})?([/?#][!-~]*)?$"


class WebhookRequest(Schema):
    url = fields.String(
        required=True,
        validate=[
            validate.Length(min=1, max=MAX_URL_LENGTH),
            validate.Regexp(URL_PATTERN, error="Must be an http or https URL."),
        ],
        metadata={"example": "https://receiver.example.com/hooks/bookings"},
    )
    types = fields.List(
        fields.String(validate=validate.OneOf(MESSAGE_TYPES)),
        validate=validate.Length(min=1),
        metadata={"description": "The message types to send; omitted: all of them"},
    )
    event_id = fields.String(
        data_key="eventId", metadata={"description": "Only this event's messages; omitted: every event's"}
    )


class RetryRequest(Schema):
    """No fields: the POST says it all. A JSON body (`{}`) all the same, as every POST of the API takes."""


class WebhookSchema(Schema):
    id = fields.UUID(required=True)
    url = fields.String(required=True)
    types = fields.List(fields.String(), allow_none=True, required=True, metadata={"description": "null: all types"})
    event_id = fields.UUID(data_key="eventId", allow_none=True, required=True)
    disabled = fields.Boolean(
        required=True, metadata={"description": "true once the receiver answered 410 Gone; nothing more is sent"}
    )
    disabled_reason = fields.String(data_key="disabledReason", allow_none=True, required=True)
    created_at = UtcDateTime(data_key="createdAt", required=True)


class CreatedWebhookSchema(WebhookSchema):
    secret = fields.String(
        required=True, metadata={"description": "`whsec_` + base64: the signing key, shown in this reply only"}
    )


class CreatedWebhookEnvelope(Schema):
    webhook = fields.Nested(CreatedWebhookSchema, required=True)


class WebhookEnvelope(Schema):
    webhook = fields.Nested(WebhookSchema, required=True)


class WebhookPageSchema(Schema):
    webhooks = fields.List(fields.Nested(WebhookSchema), required=True)
    next_after = fields.Integer(data_key="nextAfter", allow_none=True, required=True)


class DeliveriesQuery(HistoryQuery):
    state = fields.String(validate=validate.OneOf([PENDING, DELIVERED, FAILED]), load_default=None)


class DeliverySchema(Schema):
    message_id = fields.String(data_key="messageId", attribute="message_key", required=True)
    type = fields.String(required=True)
    state = fields.String(required=True, validate=validate.OneOf([PENDING, DELIVERED, FAILED]))
    attempts = fields.Integer(required=True)
    last_status = fields.Integer(
        data_key="lastStatus",
        allow_none=True,
        required=True,
        metadata={"description": "The receiver's HTTP status at the last try; null if none answered"},
    )
    last_error = fields.String(data_key="lastError", allow_none=True, required=True)
    next_attempt_at = UtcDateTime(
        data_key="nextAttemptAt", allow_none=True, required=True, metadata={"description": "null unless pending"}
    )
    occurred_at = UtcDateTime(data_key="occurredAt", required=True)
    delivered_at = UtcDateTime(data_key="deliveredAt", allow_none=True, required=True)


class DeliveryEnvelope(Schema):
    delivery = fields.Nested(DeliverySchema, required=True)


class DeliveryPageSchema(Schema):
    deliveries = fields.List(fields.Nested(DeliverySchema), required=True)
    next_after = fields.Integer(data_key="nextAfter", allow_none=True, required=True)
