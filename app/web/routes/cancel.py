from flask import g

from app.booking import services
from app.web import identity
from app.web.blueprint import Blueprint
from app.web.docs import USER_SECURITY
from app.web.schemas import BookingRequest, CancellationSchema

blp = Blueprint("cancel", __name__, url_prefix="/api", description="Cancel a booking")


@blp.route("/cancel", methods=["POST"])
@blp.arguments(BookingRequest)
@blp.idempotent_response(200, CancellationSchema)
@blp.problems(401, 403, 404, 409, 422, 503)
@blp.doc(security=USER_SECURITY)
def cancel(args):
    """Cancel a booking

    Cancels the user's active booking, confirmed or waiting. A freed ticket goes at once to the oldest
    waiting entry, returned as `promoted`.
    """
    return services.CancelBooking(args["event_id"], identity.acting_user(args.get("user_id")), g.request_id)
