from app.booking import services
from app.database.engine import db
from app.web import identity
from app.web.blueprint import Blueprint
from app.web.docs import USER_SECURITY
from app.web.schemas import BookingEnvelope, BookingPath, EventEnvelope

blp = Blueprint("status", __name__, url_prefix="/api", description="Read events and bookings")


@blp.route("/status/<event_id>", methods=["GET"])
@blp.response(200, EventEnvelope)
@blp.problems(404, 503)
def event_status(event_id):
    """Read an event

    The event with its live ticket and waiting-list counts.
    """
    return {"event": services.get_event(db.engine, event_id)}


# `path:` so that a userId containing "/" (sent as %2F) still reaches this view.
@blp.route("/booking-status/<event_id>/<path:user_id>", methods=["GET"])
@blp.arguments(BookingPath, location="path", as_kwargs=True)
@blp.response(200, BookingEnvelope)
@blp.problems(401, 403, 404, 503)
@blp.doc(security=USER_SECURITY)
def booking_status(event_id, user_id):
    """Read a user's booking

    The user's active booking at the event, else their latest cancelled one. The `user_id` is one
    percent-encoded path segment (a `/` in it as `%2F`), in UTF-8.
    """
    identity.authorize_user(user_id)
    return {"booking": services.get_booking(db.engine, event_id, user_id)}
