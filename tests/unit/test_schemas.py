"""Request validation and response rendering, without a database."""

import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pytest
from marshmallow import ValidationError

from app.booking.domain import MAX_TOTAL_TICKETS, Booking, Event
from app.booking.representation import BookingSchema, EventSchema
from app.web.schemas import NO_CONTROL_CHARACTERS, BookingRequest, InitializeRequest

NOW = datetime(2026, 11, 23, 17, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize("user_id", ["u", "user-123", "Zoë", "北京", "a b", "emoji 🎟", "x" * 128, "a/b", "\u200b"])
def test_user_id_accepts_any_printable_unicode_up_to_128_characters(user_id):
    assert BookingRequest().load({"eventId": "e", "userId": user_id})["user_id"] == user_id


@pytest.mark.parametrize("user_id", ["", "x" * 129, "a\tb", "a\nb", "\x00", "\x7f", "\x85", "\ud83c"])
def test_user_id_rejects_empty_long_control_and_surrogate_characters(user_id):
    with pytest.raises(ValidationError) as error:
        BookingRequest().load({"eventId": "e", "userId": user_id})
    assert list(error.value.messages) == ["userId"]


@pytest.mark.parametrize("total", [1, MAX_TOTAL_TICKETS])
def test_total_tickets_accepts_the_bounds(total):
    assert InitializeRequest().load({"totalTickets": total}) == {"total_tickets": total}


def test_total_tickets_with_a_zero_fraction_is_that_integer():
    loaded = InitializeRequest().load({"totalTickets": 543.0})["total_tickets"]
    assert loaded == 543 and type(loaded) is int


@pytest.mark.parametrize("total", [0, -1, MAX_TOTAL_TICKETS + 1, True, False, 1.5, 1e300, float("nan"), "1", None])
def test_total_tickets_must_be_a_json_integer_in_range(total):
    with pytest.raises(ValidationError):
        InitializeRequest().load({"totalTickets": total})


def test_event_renders_camel_case_counts_and_utc_timestamps():
    event = Event(uuid4(), "Gig", 10, 3, 2, NOW, NOW.astimezone(timezone(timedelta(hours=2))), 10, 2, "active", True)
    rendered = EventSchema().dump(event)
    assert (rendered["bookedTickets"], rendered["availableTickets"], rendered["waitingListCount"]) == (7, 3, 2)
    assert rendered["createdAt"] == rendered["updatedAt"] == "2026-11-23T17:00:00.123456Z"
    assert (rendered["maxPerBooking"], rendered["waitingTickets"]) == (10, 2)
    assert (rendered["status"], rendered["salesOpen"]) == ("active", True)


def test_booking_renders_a_null_waiting_position_unless_waiting():
    booking = Booking(uuid4(), uuid4(), "u", "confirmed", None, NOW, NOW)
    assert BookingSchema().dump(booking)["waitingPosition"] is None


def test_control_character_pattern_forbids_exactly_the_cc_category():
    for code_point in range(0x10000):  # every Cc character lies in the Basic Multilingual Plane
        char = chr(code_point)
        forbidden = unicodedata.category(char) == "Cc"
        assert (re.fullmatch(NO_CONTROL_CHARACTERS, char) is None) == forbidden, hex(code_point)
