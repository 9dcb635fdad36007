from app.booking import services
from app.database.engine import db
from app.web.blueprint import Blueprint
from app.web.docs import ADMIN_SECURITY
from app.web.identity import require_admin
from app.web.schemas import HistoryPageSchema, HistoryQuery

blp = Blueprint("history", __name__, url_prefix="/api", description="The booking ledger of an event (admin)")


@blp.route("/events/<event_id>/history", methods=["GET"])
@blp.response(200, HistoryPageSchema)
@blp.problems(401, 403, 404, 503)
@blp.doc(security=ADMIN_SECURITY)
@require_admin
@blp.arguments(HistoryQuery, location="query", as_kwargs=True)
def event_history(event_id, after, limit):
    """Read an event's ledger (admin)

    Every change to the event's bookings (`booked`, `waitlisted`, `cancelled`, `reduced`, `promoted`;
    offers: `offered`, `accepted`, `declined`, `expired`) and its organiser's changes (`event_updated`
    for each PATCH that changes something, then `capacity_changed`, `sales_closed`, `sales_opened` as it
    did; `event_cancelled`; each followed by the bookings it touched), oldest first, by pages: pass
    `nextAfter` as `after` for the next one.
    """
    return services.event_history(db.engine, event_id, after, limit)
