from flask import g

from app.booking import services
from app.web import identity
from app.web.blueprint import Blueprint
from app.web.docs import USER_SECURITY
from app.web.schemas import BookingEnvelope, BookingRequest

blp = Blueprint("book", __name__, url_prefix="/api", description="Book a ticket or join the waiting list")


@blp.route("/book", methods=["POST"])
@blp.arguments(BookingRequest)
@blp.idempotent_response(201, BookingEnvelope, present=lambda booking: {"booking": booking})
@blp.problems(401, 403, 404, 409, 422, 503)
@blp.doc(security=USER_SECURITY)
def book(args):
    """Book a ticket, or join the waiting list

    The booking is `confirmed` while tickets remain, else `waiting` at the back of the list.
    """
    return services.BookTicket(args["event_id"], identity.acting_user(args.get("user_id")), g.request_id)
