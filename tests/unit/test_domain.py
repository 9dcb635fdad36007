from uuid import UUID

import pytest
from sqlalchemy import CheckConstraint

from app.booking.domain import (
    MAX_OFFER_TTL_SECONDS,
    MAX_PER_BOOKING,
    MAX_TOTAL_TICKETS,
    AlreadyBooked,
    EventNotFound,
    parse_event_id,
)
from app.database.tables import events


def test_event_id_in_canonical_form_is_parsed():
    assert parse_event_id("6f1c1d0e-3b0a-4c55-9a7e-2b8f7f3e9d10") == UUID("6f1c1d0e-3b0a-4c55-9a7e-2b8f7f3e9d10")


@pytest.mark.parametrize("event_id", ["", "nope", "123", "6f1c1d0e-3b0a-4c55-9a7e", None, 42])
def test_event_id_of_any_other_shape_names_no_event(event_id):
    with pytest.raises(EventNotFound) as error:
        parse_event_id(event_id)
    assert error.value.code == "event_not_found"


def test_domain_errors_explain_themselves_with_the_user():
    assert str(AlreadyBooked("user-123")) == "user-123 already holds a booking for this event"


def test_the_event_limits_are_the_ones_the_events_table_checks():
    checks = {check.name: str(check.sqltext) for check in events.constraints if isinstance(check, CheckConstraint)}
    assert checks["ck_events_total_tickets_range"] == f"total_tickets BETWEEN 1 AND {MAX_TOTAL_TICKETS}"
    assert checks["ck_events_max_per_booking_range"] == f"max_per_booking BETWEEN 1 AND {MAX_PER_BOOKING}"
    assert checks["ck_events_offer_ttl_range"] == f"offer_ttl_seconds BETWEEN 1 AND {MAX_OFFER_TTL_SECONDS}"
