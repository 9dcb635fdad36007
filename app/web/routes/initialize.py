from flask import url_for

from app.booking import services
from app.web.blueprint import Blueprint
from app.web.docs import ADMIN_SECURITY, LOCATION_HEADER
from app.web.identity import require_admin
from app.web.schemas import EventEnvelope, InitializeRequest

blp = Blueprint("initialize", __name__, url_prefix="/api", description="Open an event (admin)")


def with_location(event):
    return {"event": event}, {"Location": url_for("status.event_status", event_id=str(event.id))}


@blp.route("/initialize", methods=["POST"])
@require_admin  # before anything else: a key's stored response is for admins only
@blp.arguments(InitializeRequest)
@blp.idempotent_response(201, EventEnvelope, present=with_location, headers={"Location": LOCATION_HEADER})
@blp.problems(401, 403, 409, 422, 503)
@blp.doc(security=ADMIN_SECURITY)
def initialize(args):
    """Open an event (admin)

    The event gets `totalTickets` tickets, all available, at most `maxPerBooking` per booking;
    `Location` is its status URL.
    """
    return services.OpenEvent(**args)  # the schema's names are the use case's; absent ones take its defaults
