"""The floor: the production app plus one booking-shaped endpoint that never touches the database.

`gunicorn -c gunicorn.conf.py bench.floor:app` serves it with the very settings of `make run`, so
the bench can show what the framework alone costs per request: the same hooks (request id, JSON
check, access log), the same request parsing and response rendering as POST /api/book, and no SQL.
It lives here, not in app/, so that production never serves it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from app import create_app
from app.booking.domain import CONFIRMED, Booking, parse_event_id
from app.web.blueprint import Blueprint
from app.web.schemas import BookingEnvelope, BookRequest

blp = Blueprint("bench_floor", __name__, url_prefix="/bench", description="Bench floor (not in production)")
NOW = datetime.now(UTC)


@blp.route("/floor", methods=["POST"])
@blp.arguments(BookRequest)
@blp.response(201, BookingEnvelope)
def floor(args):
    """What POST /api/book answers, made up in memory."""
    event_id = parse_event_id(args["event_id"])
    booking = Booking(uuid.uuid4(), event_id, args["user_id"], CONFIRMED, None, NOW, NOW, args["quantity"])
    return {"booking": booking}


app = create_app()
# create_app builds its flask-smorest Api without returning it; the Api of any registered
# blueprint is the app's one.
app.extensions["flask-smorest"]["blp_name_to_api"]["health"].register_blueprint(blp)
