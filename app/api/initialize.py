from flask import url_for

from app import services
from app.api import Blueprint
from app.api.auth import require_admin
from app.docs import ADMIN_SECURITY, LOCATION_HEADER
from app.extensions import db
from app.schemas import EventEnvelope, InitializeRequest

blp = Blueprint("initialize", __name__, url_prefix="/api", description="Open an event (admin)")


@blp.route("/initialize", methods=["POST"])
@blp.response(201, EventEnvelope, headers={"Location": LOCATION_HEADER})
@blp.problems(401, 503)
@blp.doc(security=ADMIN_SECURITY)
@require_admin
@blp.arguments(InitializeRequest)
def initialize(args):
    """Open an event with `totalTickets` tickets, all available."""
    event = services.initialize_event(db.engine, args["total_tickets"], args.get("name"))
    return {"event": event}, {"Location": url_for("status.event_status", event_id=str(event.id))}
