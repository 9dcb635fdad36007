from flask import g

from app.booking import services
from app.web import identity
from app.web.blueprint import Blueprint
from app.web.docs import USER_SECURITY
from app.web.schemas import CancellationSchema, CancelRequest

blp = Blueprint("cancel", __name__, url_prefix="/api", description="Cancel a booking")


@blp.route("/cancel", methods=["POST"])
@blp.arguments(CancelRequest)
@blp.idempotent_response(200, CancellationSchema)
@blp.problems(401, 403, 404, 409, 422, 503)
@blp.doc(security=USER_SECURITY)
def cancel(args):
    """Cancel a booking

    Cancels the user's active booking, confirmed or waiting, or with `quantity` only that many of its
    tickets, or with `items` only those of each type (a waiting entry that shrinks keeps its place). Freed tickets go at once to the oldest
    waiting entries while the oldest fits, returned as `promotedBookings` (`promoted`: the first).
    """
    user_id = identity.acting_user(args.get("user_id"))
    return services.CancelBooking(args["event_id"], user_id, g.request_id, args.get("quantity"), args.get("items"))
