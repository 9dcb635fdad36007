from app.booking import services
from app.database.engine import db
from app.web import identity
from app.web.blueprint import Blueprint
from app.web.docs import USER_SECURITY
from app.web.schemas import UserBookingsPageSchema, UserBookingsQuery, UserPath

blp = Blueprint("users", __name__, url_prefix="/api", description="A user's bookings across events")


# `path:` as for booking-status: a userId may contain "/" (sent as %2F).
@blp.route("/users/<path:user_id>/bookings", methods=["GET"])
@blp.arguments(UserPath, location="path", as_kwargs=True)
@blp.arguments(UserBookingsQuery, location="query", as_kwargs=True)
@blp.response(200, UserBookingsPageSchema)
@blp.problems(401, 403, 503)
@blp.doc(security=USER_SECURITY)
def user_bookings(user_id, after, limit):
    """The user's bookings at every event (active and cancelled), newest first, by pages.

    Public with AUTH_MODE=open, as booking-status is; with AUTH_MODE=jwt, the user's own token or
    one with `bookings:any`."""
    identity.authorize_user(user_id)
    return services.user_bookings(db.engine, user_id, after, limit)
