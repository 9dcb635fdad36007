"""Organisers run an event over its life (admin): list events, change one, call it off, see who holds
and who waits (as JSON pages, or the whole list as CSV)."""

from flask import g
from marshmallow import RAISE

from app.booking import organisers
from app.booking.domain import EventChanges
from app.database.engine import db
from app.web.blueprint import Blueprint
from app.web.csv_export import CSV_CONTENT, csv_response, wants_csv
from app.web.docs import ADMIN_SECURITY
from app.web.identity import require_admin
from app.web.schemas import (
    BookingRowSchema,
    BookingsPageSchema,
    BookingsQuery,
    EventEnvelope,
    EventPatchRequest,
    EventsPageSchema,
    EventsQuery,
    EventUpdateSchema,
    WaitingEntrySchema,
    WaitingListPageSchema,
    WaitingListQuery,
)

blp = Blueprint("events", __name__, url_prefix="/api", description="Organisers: run an event over its life (admin)")

AS_CSV = {"responses": {200: {"content": CSV_CONTENT}}}
WAITING_CSV = WaitingEntrySchema()
BOOKINGS_CSV = BookingRowSchema()
# An unknown query parameter is a 400, as an unknown body field is: a misspelt filter must not be ignored.
QUERY = {"location": "query", "as_kwargs": True, "unknown": RAISE}


@blp.route("/events", methods=["GET"])
@blp.response(200, EventsPageSchema)
@blp.problems(401, 403, 503)
@blp.doc(security=ADMIN_SECURITY)
@require_admin
@blp.arguments(EventsQuery, **QUERY)
def list_events(limit, status=None, after=None):
    """List events (admin)

    Newest first, by pages: pass `nextAfter` as `after` for the next one; `status` keeps the `active`
    or the `cancelled` ones.
    """
    return organisers.list_events(db.engine, status, after, limit)


@blp.route("/events/<event_id>", methods=["PATCH"])
@require_admin  # before anything else: a key's stored response is for admins only
@blp.arguments(EventPatchRequest)
@blp.idempotent_response(200, EventUpdateSchema)
@blp.problems(401, 403, 404, 409, 422, 503)
@blp.doc(security=ADMIN_SECURITY)
def update_event(args, event_id):
    """Change an event (admin)

    Any of `name`, `totalTickets`, `maxPerBooking`, `salesOpen`, `promotion`, `offerTtlSeconds`,
    `holdTtlSeconds`, `salesOpenAt`; what is absent stays. `salesOpenAt` moves (or, null, clears) the fair
    sale opening until its draw starts, then it is 409 `draw_started`. Raising
    `totalTickets` confirms waiting entries first come, first served, while the oldest fits
    (`promotedBookings`); lowering it below the tickets held is 409 `capacity_below_booked`, below a
    waiting entry's quantity 409 `capacity_below_waiting`. A cancelled event is 409 `event_cancelled`.
    """
    return organisers.UpdateEvent(event_id, EventChanges(**args), g.request_id)


@blp.route("/events/<event_id>/cancel", methods=["POST"])
@require_admin
@blp.takes_no_body
@blp.idempotent_response(200, EventEnvelope, present=lambda cancellation: {"event": cancellation.event})
@blp.problems(401, 403, 404, 422, 503)
@blp.doc(security=ADMIN_SECURITY)
def cancel_event(event_id):
    """Call an event off (admin)

    Cancels every active booking and makes the event `cancelled`, in one transaction; afterwards
    booking, cancelling and changing it are 409 `event_cancelled`. Calling it again is 200 with the
    same event. Takes no body (or `{}`; any other body is 400).
    """
    return organisers.CancelEvent(event_id, g.request_id)


@blp.route("/events/<event_id>/waiting-list", methods=["GET"])
@blp.response(200, WaitingListPageSchema)
@blp.problems(401, 403, 404, 503)
@blp.doc(security=ADMIN_SECURITY, **AS_CSV)
@require_admin
@blp.arguments(WaitingListQuery, **QUERY)
def waiting_list(event_id, after, limit):
    """Read an event's waiting list (admin)

    The waiting entries, oldest first, each with its `position` and the `ticketsAhead` of it, by
    pages. With `Accept: text/csv`, the whole list as CSV (same columns), streamed; `after` and
    `limit` then do not apply.
    """
    if wants_csv():
        return csv_response(organisers.stream_waiting_list(db.engine, event_id), WAITING_CSV, "waiting-list.csv")
    return organisers.waiting_list(db.engine, event_id, after, limit)


@blp.route("/events/<event_id>/bookings", methods=["GET"])
@blp.response(200, BookingsPageSchema)
@blp.problems(401, 403, 404, 503)
@blp.doc(security=ADMIN_SECURITY, **AS_CSV)
@require_admin
@blp.arguments(BookingsQuery, **QUERY)
def bookings(event_id, after, limit, status=None):
    """Read an event's bookings (admin)

    Every booking (or those of `status`), oldest first, by pages. With `Accept: text/csv`, all of
    them as CSV (same columns), streamed; `after` and `limit` then do not apply.
    """
    if wants_csv():
        return csv_response(organisers.stream_bookings(db.engine, event_id, status), BOOKINGS_CSV, "bookings.csv")
    return organisers.booking_list(db.engine, event_id, status, after, limit)
