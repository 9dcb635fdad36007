"""Property-based: generated requests to every operation of the document, sent to the live app.

schemathesis checks that no response is a 5xx and that every response (status, content type, headers,
body) is one the document describes. Bounded and derandomized so that `make test` stays fast and
repeatable; point schemathesis's CLI at a running server for a longer search.
"""

import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation

from app import create_app
from app.config import Config

# The document is read from an app built like the live one, at import time, because schemathesis
# parametrizes the test while collecting it; serving the document needs no database.
DOCUMENT_ONLY = Config(database_url="postgresql+psycopg2://unused@127.0.0.1:1/unused", admin_token="unused")
schema = schemathesis.openapi.from_wsgi("/openapi.json", create_app(DOCUMENT_ONLY))


@pytest.mark.usefixtures("webhooks_removed_afterwards")
@schema.parametrize()
@settings(max_examples=50, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
def test_app_answers_as_its_openapi_document_says(case, app, admin_headers):
    # Generated keys repeat across generated bodies, which is 422 idempotency_key_reused by design;
    # a unique suffix keeps each key as generated, and each request a first one.
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = case.headers["Idempotency-Key"][:200] + uuid.uuid4().hex
    if isinstance(case.body, dict) and not (case.meta and case.meta.generation.mode.is_negative):
        within_the_rules_between_fields(case.body)
    case.call_and_validate(app=app, headers=credentials_for(case, admin_headers))


def credentials_for(case, admin_headers: dict) -> dict:
    """The admin token, unless the case's headers are meant to be invalid and left it out on purpose: added
    back, it would turn "no credentials" into an accepted request and fail the negative check."""
    headers_negative = case.meta and case.meta.is_negative_at(ParameterLocation.HEADER)
    if headers_negative and "Authorization" not in (case.headers or {}):
        return {}
    return admin_headers


def first_of_each(elements: list, key: str) -> list:
    seen = set()
    kept = []
    for element in elements:
        code = element.get(key) if isinstance(element, dict) else None
        if not isinstance(code, str) or code not in seen:
            kept.append(element)
            seen.add(code)
    return kept


def within_the_rules_between_fields(body: dict) -> None:
    """A body meant to be valid, made to keep the rules between its fields that JSON Schema cannot state
    (400 otherwise): one item per type and each type's code once (uniqueItems compares whole objects),
    and no type's totalTickets above the event's."""
    for field, key in (("items", "ticketType"), ("ticketTypes", "code")):
        if isinstance(body.get(field), list):
            body[field] = first_of_each(body[field], key)
    total = body.get("totalTickets")
    for ticket_type in body.get("ticketTypes") or []:
        if isinstance(total, int | float) and isinstance(ticket_type, dict) and "totalTickets" in ticket_type:
            ticket_type["totalTickets"] = min(ticket_type["totalTickets"], total)
