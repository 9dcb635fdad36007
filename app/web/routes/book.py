from flask import g

from app.booking import services
from app.web.blueprint import Blueprint
from app.web.schemas import BookingEnvelope, BookingRequest

blp = Blueprint("book", __name__, url_prefix="/api", description="Book a ticket or join the waiting list")


@blp.route("/book", methods=["POST"])
@blp.arguments(BookingRequest)
@blp.idempotent_response(201, BookingEnvelope, present=lambda booking: {"booking": booking})
@blp.problems(404, 409, 422, 503)
def book(args):
    """Book a ticket, or join the waiting list

    The booking is `confirmed` while tickets remain, else `waiting` at the back of the list.
    """
    return services.BookTicket(args["event_id"], args["user_id"], g.request_id)
