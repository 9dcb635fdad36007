from flask import g

from app.booking import services
from app.web import identity
from app.web.blueprint import Blueprint
from app.web.docs import USER_SECURITY
from app.web.schemas import BookingEnvelope, BookRequest

blp = Blueprint("book", __name__, url_prefix="/api", description="Book a ticket or join the waiting list")


@blp.route("/book", methods=["POST"])
@blp.arguments(BookRequest)
@blp.idempotent_response(201, BookingEnvelope, present=lambda booking: {"booking": booking})
@blp.problems(401, 403, 404, 409, 422, 503)
@blp.doc(security=USER_SECURITY)
def book(args):
    """Book tickets, or join the waiting list

    `quantity` tickets (default 1), all or none: the booking is `confirmed` if nobody is waiting and
    they are all available, else one `waiting` entry at the back of the list. On an event of several
    ticket types, `items` instead: all or none, confirmed at once only if the FIFO rule with types
    would promote it as the newest entry. On an event with a fair sale opening (`salesOpenAt`), until its
    draw is done the booking is a `lobby` entry instead, which the draw books (poll booking-status, or
    receive the webhook).
    """
    user_id = identity.acting_user(args.get("user_id"))
    return services.BookTicket(args["event_id"], user_id, g.request_id, args["quantity"], args.get("items"))
