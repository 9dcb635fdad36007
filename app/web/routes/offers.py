"""Offers (issue 16): the user who was offered freed tickets accepts them, or passes them on."""

from flask import g

from app.booking import services
from app.web import identity
from app.web.blueprint import Blueprint
from app.web.docs import USER_SECURITY
from app.web.schemas import BookingEnvelope, CancellationSchema, OfferRequest

blp = Blueprint("offers", __name__, url_prefix="/api", description="Accept or decline an offer")


@blp.route("/accept", methods=["POST"])
@blp.arguments(OfferRequest)
@blp.idempotent_response(200, BookingEnvelope)
@blp.problems(401, 403, 404, 409, 422, 503)
@blp.doc(security=USER_SECURITY)
def accept(args):
    """Accept an offer

    The user's `offered` booking becomes `confirmed`. After its `offerExpiresAt`, by the database's
    clock, it is 409 `offer_expired`, even before the expiry is processed; with no offer, 409 `no_offer`.
    """
    user_id = identity.acting_user(args.get("user_id"))
    return services.AcceptOffer(args["event_id"], user_id, g.request_id)


@blp.route("/decline", methods=["POST"])
@blp.arguments(OfferRequest)
@blp.idempotent_response(200, CancellationSchema)
@blp.problems(401, 403, 404, 409, 422, 503)
@blp.doc(security=USER_SECURITY)
def decline(args):
    """Decline an offer

    The user's offer is cancelled (`cancelReason` `declined`) and its tickets go to the next waiting
    entries by the FIFO rule, offered again if the event is in offer mode (`promotedBookings`). An
    expired offer is 409 `offer_expired`, none 409 `no_offer`. `cancel` also gives an offer up.
    """
    user_id = identity.acting_user(args.get("user_id"))
    return services.DeclineOffer(args["event_id"], user_id, g.request_id)
