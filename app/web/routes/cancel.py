from flask import g

from app.booking import services
from app.web.blueprint import Blueprint
from app.web.schemas import BookingRequest, CancellationSchema

blp = Blueprint("cancel", __name__, url_prefix="/api", description="Cancel a booking")


@blp.route("/cancel", methods=["POST"])
@blp.arguments(BookingRequest)
@blp.idempotent_response(200, CancellationSchema)
@blp.problems(404, 409, 422, 503)
def cancel(args):
    """Cancel a booking

    Cancels the user's active booking, confirmed or waiting. A freed ticket goes at once to the oldest
    waiting entry, returned as `promoted`.
    """
    return services.CancelBooking(args["event_id"], args["user_id"], g.request_id)
