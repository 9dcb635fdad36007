from marshmallow import RAISE

from app.database.engine import db
from app.notifications import service
from app.web.blueprint import Blueprint
from app.web.docs import ADMIN_SECURITY
from app.web.identity import require_admin
from app.web.schemas import HistoryQuery
from app.web.webhook_admin import webhook_admin
from app.web.webhook_schemas import (
    CreatedWebhookEnvelope,
    DeliveriesQuery,
    DeliveryEnvelope,
    DeliveryPageSchema,
    RetryRequest,
    WebhookEnvelope,
    WebhookPageSchema,
    WebhookRequest,
)

blp = Blueprint("webhooks", __name__, url_prefix="/api", description="Signed webhooks and their delivery log (admin)")


def admin_only(*statuses: int):
    """What every read here is: for admins (identity.require_admin), documented as such, with its own
    error statuses besides those of the admin check and of the database."""

    def decorator(view):
        return documented_for_admins(*statuses)(require_admin(view))

    return decorator


def documented_for_admins(*statuses: int):
    """The documentation of an admin route: its error statuses, and the admin security scheme. A write
    checks the caller first itself (`require_admin` outermost: a key's stored response is for admins only)."""

    def decorator(view):
        return blp.problems(401, 403, *statuses, 503)(blp.doc(security=ADMIN_SECURITY)(view))

    return decorator


@blp.route("/webhooks", methods=["POST"])
@require_admin
@blp.arguments(WebhookRequest)
@blp.idempotent_response(201, CreatedWebhookEnvelope, present=lambda webhook: {"webhook": webhook})
@documented_for_admins(404)
def create_webhook(args):
    """Register a webhook receiver (admin)

    Each change the webhook asks for (`types`, `eventId`; all when left out), of a booking or of the
    event, is sent to `url`,
    signed the Standard Webhooks way. The reply shows the signing `secret`, this once.
    """
    registration = webhook_admin.registration
    return service.RegisterWebhook(registration, args["url"], args.get("types"), args.get("event_id"))


@blp.route("/webhooks", methods=["GET"])
@blp.response(200, WebhookPageSchema)
@admin_only()
@blp.arguments(HistoryQuery, location="query", as_kwargs=True, unknown=RAISE)
def list_webhooks(after, limit):
    """List the webhooks (admin)

    Oldest first, by pages: pass `nextAfter` as `after` for the next one. Secrets are never shown.
    """
    return service.list_webhooks(db.engine, after, limit)


@blp.route("/webhooks/<webhook_id>", methods=["GET"])
@blp.response(200, WebhookEnvelope)
@admin_only(404)
def get_webhook(webhook_id):
    """Read one webhook (admin)

    The webhook as registered, and whether it was disabled (and why); never its secret.
    """
    return {"webhook": service.get_webhook(db.engine, webhook_id)}


@blp.route("/webhooks/<webhook_id>", methods=["DELETE"])
@require_admin
@blp.idempotent_response(204, None)
@documented_for_admins(404)
def delete_webhook(webhook_id):
    """Remove a webhook (admin)

    The webhook and its delivery log are deleted; nothing more is sent to it.
    """
    return service.DeleteWebhook(webhook_id)


@blp.route("/webhooks/<webhook_id>/deliveries", methods=["GET"])
@blp.response(200, DeliveryPageSchema)
@admin_only(404)
@blp.arguments(DeliveriesQuery, location="query", as_kwargs=True, unknown=RAISE)
def list_deliveries(webhook_id, after, limit, state):
    """List a webhook's deliveries (admin)

    The webhook's messages, oldest first, by pages, with how each delivery stands (`pending`,
    `delivered`, `failed`); `state` keeps only those in that state.
    """
    return service.list_deliveries(db.engine, webhook_id, after, limit, state)


@blp.route("/webhooks/<webhook_id>/deliveries/<message_id>/retry", methods=["POST"])
@require_admin
@blp.arguments(RetryRequest)
@blp.idempotent_response(202, DeliveryEnvelope, present=lambda delivery: {"delivery": delivery})
@documented_for_admins(404)
def retry_delivery(_args, webhook_id, message_id):
    """Send a message again (admin)

    The message is due at once (a failed one, or one to send twice); if that try fails it is failed again.
    """
    return service.RetryDelivery(webhook_id, message_id)
