"""Checkout holds (issue 25): the payment backend confirms the hold that a booking got for its payment."""

from flask import g

from app.booking import services
from app.web import identity
from app.web.blueprint import Blueprint
from app.web.docs import CONFIRM_SECURITY
from app.web.schemas import BookingEnvelope, ConfirmRequest

blp = Blueprint("holds", __name__, url_prefix="/api", description="Confirm a hold once its payment is done")


@blp.route("/confirm", methods=["POST"])
@blp.arguments(ConfirmRequest)
@blp.idempotent_response(200, BookingEnvelope)
@blp.problems(401, 403, 404, 409, 422, 503)
@blp.doc(security=CONFIRM_SECURITY)
def confirm(args):
    """Confirm a hold (payment done)

    The user's `held` booking becomes `confirmed`, keeping `paymentReference`. After its `holdExpiresAt`,
    by the database's clock, it is 409 `hold_expired`, even before the expiry is processed, and after it
    too, until the user books again: the payment must then be refunded. No hold is 409 `no_hold`; a
    booking already confirmed with the same `paymentReference` (or both without one) is 200 again, with
    another 409 `already_confirmed`. With AUTH_MODE=jwt it needs the `bookings:confirm` scope (the payment
    backend's), `events:admin` or the admin token: a user may not confirm their own hold.
    """
    identity.require_confirmer()
    return services.ConfirmHold(args["event_id"], args["user_id"], g.request_id, args.get("payment_reference"))
