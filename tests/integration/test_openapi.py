"""The OpenAPI document and the docs page: valid, complete, and served without any outside host."""

import re

import pytest
from openapi_spec_validator import validate
from sqlalchemy import text

from app.web.errors import PROBLEM_JSON


@pytest.fixture(scope="module")
def document(app):
    return app.test_client().get("/openapi.json").get_json()


def operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                yield f"{method.upper()} {path}", operation


def resolve(document, obj):
    if "$ref" not in obj:
        return obj
    section, name = obj["$ref"].split("/")[-2:]
    return document["components"][section][name]


def test_openapi_document_is_valid_openapi_3(document):
    validate(document)
    assert document["openapi"].startswith("3.")


def test_document_defines_only_schemas_of_this_api(document):
    assert set(document["components"]["schemas"]) == {
        "Problem",
        "InitializeRequest",
        "Event",
        "EventEnvelope",
        "BookRequest",
        "CancelRequest",
        "OfferRequest",
        "ConfirmRequest",
        "Booking",
        "BookingEnvelope",
        "Cancellation",
        "Health",
        "HistoryPage",
        "LedgerEntry",
        "Index",
        "UserBookingsPage",
        "WebhookRequest",
        "Webhook",
        "CreatedWebhook",
        "CreatedWebhookEnvelope",
        "WebhookEnvelope",
        "WebhookPage",
        "Delivery",
        "DeliveryEnvelope",
        "DeliveryPage",
        "RetryRequest",
        "EventsPage",
        "EventPatchRequest",
        "EventUpdate",
        "WaitingListPage",
        "WaitingEntry",
        "BookingsPage",
        "BookingRow",
        "TicketType",
        "BookingItem",
        "ItemRequest",
        "TicketTypeRequest",
        "NewTicketTypeRequest",
    }


def test_document_lists_every_endpoint_of_the_contract(document):
    assert set(document["paths"]) == {
        "/api/initialize",
        "/api/book",
        "/api/cancel",
        "/api/accept",
        "/api/decline",
        "/api/confirm",
        "/api/status/{event_id}",
        "/api/booking-status/{event_id}/{user_id}",
        "/healthz",
        "/readyz",
        "/api/events/{event_id}/history",
        "/",
        "/api/users/{user_id}/bookings",
        "/api/webhooks",
        "/api/webhooks/{webhook_id}",
        "/api/webhooks/{webhook_id}/deliveries",
        "/api/webhooks/{webhook_id}/deliveries/{message_id}/retry",
        "/api/events",
        "/api/events/{event_id}",
        "/api/events/{event_id}/cancel",
        "/api/events/{event_id}/waiting-list",
        "/api/events/{event_id}/bookings",
    }


def test_every_error_response_is_problem_json(document):
    for name, operation in operations(document):
        errors = {status: resolve(document, r) for status, r in operation["responses"].items() if status >= "400"}
        assert "500" in errors, name
        for status, response in errors.items():
            assert list(response["content"]) == [PROBLEM_JSON], (name, status)
            assert response["content"][PROBLEM_JSON]["schema"] == {"$ref": "#/components/schemas/Problem"}


def test_every_operation_documents_its_success_with_a_schema_and_the_request_id(document):
    for name, operation in operations(document):
        success = {status: resolve(document, r) for status, r in operation["responses"].items() if status < "300"}
        assert len(success) == 1, name
        [(status, response)] = success.items()
        if status != "204":  # No Content: DELETE /api/webhooks/<id>
            assert response["content"]["application/json"]["schema"]["$ref"], name
        assert "X-Request-ID" in response["headers"], name
        assert any(p.get("name") == "X-Request-ID" for p in operation["parameters"]), name


@pytest.mark.parametrize(
    "operation, statuses",
    [
        ("POST /api/initialize", {"400", "401", "409", "413", "415", "422", "429", "500", "503"}),
        ("POST /api/book", {"400", "404", "409", "413", "415", "422", "429", "500", "503"}),
        ("POST /api/cancel", {"400", "404", "409", "413", "415", "422", "429", "500", "503"}),
        ("GET /api/status/{event_id}", {"400", "404", "429", "500", "503"}),
        ("GET /api/booking-status/{event_id}/{user_id}", {"400", "404", "429", "500", "503"}),
        ("GET /api/events/{event_id}/history", {"400", "401", "404", "429", "500", "503"}),
        ("GET /api/events", {"400", "401", "429", "500", "503"}),
        ("PATCH /api/events/{event_id}", {"400", "401", "404", "409", "422", "429", "500", "503"}),
        ("POST /api/events/{event_id}/cancel", {"400", "401", "404", "413", "415", "422", "429", "500", "503"}),
        ("GET /api/events/{event_id}/waiting-list", {"400", "401", "404", "429", "500", "503"}),
        ("GET /api/events/{event_id}/bookings", {"400", "401", "404", "429", "500", "503"}),
        ("GET /healthz", {"500"}),
    ],
)
def test_operation_documents_the_errors_of_the_contract(document, operation, statuses):
    documented = dict(operations(document))[operation]["responses"]
    assert statuses <= set(documented)


def test_operation_summaries_are_plain_text_and_descriptions_say_the_rest(document):
    # Swagger UI shows a summary as text: markdown there would show its backticks.
    for name, operation in operations(document):
        assert operation["summary"] and not re.search(r"[`*_\[\]<>]", operation["summary"]), name
        assert operation["description"], name


def test_the_root_points_to_the_docs_and_the_document(client):
    links = client.get("/").get_json()
    assert links == {"docs": "/docs", "openapi": "/openapi.json"}
    for path in links.values():
        assert client.get(path).status_code == 200, path


def test_rate_limited_response_documents_retry_after_and_the_limit_headers(document):
    assert "429" not in document["paths"]["/healthz"]["get"]["responses"]
    headers = document["components"]["responses"]["TOO_MANY_REQUESTS"]["headers"]
    assert {"Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(headers)


def test_error_responses_name_their_codes_and_give_an_example(document):
    not_found = document["components"]["responses"]["NOT_FOUND"]
    assert "`event_not_found`" in not_found["description"] and "`booking_not_found`" in not_found["description"]
    assert not_found["content"][PROBLEM_JSON]["example"]["code"] == "event_not_found"


def test_initialize_requires_the_admin_bearer_scheme(document):
    assert document["components"]["securitySchemes"]["adminToken"] == {"type": "http", "scheme": "bearer"}
    initialize = document["paths"]["/api/initialize"]["post"]
    assert initialize["security"] == [{"adminToken": []}]
    assert "security" not in document["paths"]["/api/book"]["post"]
    assert "security" not in document["paths"]["/api/confirm"]["post"]  # open mode: anyone may confirm
    assert document["paths"]["/api/events/{event_id}/history"]["get"]["security"] == [{"adminToken": []}]


def test_request_bodies_carry_examples(document):
    schemas = document["components"]["schemas"]
    assert schemas["InitializeRequest"]["properties"]["totalTickets"]["example"] == 100
    for request in ("BookRequest", "CancelRequest"):
        assert all("example" in field for field in schemas[request]["properties"].values())


def test_docs_page_loads_swagger_ui_from_the_app_itself(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    for asset in assets:
        assert asset.startswith("/"), asset  # no CDN, no outside host
        with client.get(asset) as response:
            assert response.status_code == 200, asset
    assert 'data-spec-url="/openapi.json"' in html and "<script>" not in html


def idempotency_key_parameter(document, path: str) -> dict:
    [key] = [p for p in document["paths"][path]["post"]["parameters"] if p["name"] == "Idempotency-Key"]
    return key


@pytest.mark.parametrize("path", ["/api/initialize", "/api/book", "/api/cancel"])
def test_writes_document_the_idempotency_key_and_the_replay_header(document, path):
    operation = document["paths"][path]["post"]
    key = idempotency_key_parameter(document, path)
    assert (key["in"], key["required"], key["schema"]["maxLength"]) == ("header", False, 255)
    success = next(r for status, r in operation["responses"].items() if status < "300")
    assert "Idempotent-Replayed" in success["headers"]


@pytest.mark.parametrize("path", ["/api/initialize", "/api/book", "/api/cancel"])
def test_the_idempotency_key_states_the_rule_the_server_enforces(document, path):
    key = idempotency_key_parameter(document, path)
    rule = re.compile(key["schema"]["pattern"])

    assert (key["schema"]["minLength"], key["schema"]["maxLength"]) == (1, 255)
    assert rule.fullmatch("~ !azAZ09-_.:") and rule.fullmatch(" ")
    for refused in ("a,b", "tab\there", "del\x7f", "caf\xe9"):
        assert not rule.fullmatch(refused), refused


@pytest.mark.parametrize("path", ["/api/initialize", "/api/book", "/api/cancel"])
def test_the_idempotency_key_has_no_example_for_swagger_ui_to_send_twice(document, path):
    key = idempotency_key_parameter(document, path)
    assert not {"example", "examples"} & (set(key) | set(key["schema"]))


def test_the_document_states_the_fields_of_several_tickets_per_booking(document):
    schemas = document["components"]["schemas"]
    assert {"quantity", "ticketsAhead"} <= set(schemas["Booking"]["required"])
    assert {"maxPerBooking", "waitingTickets"} <= set(schemas["Event"]["required"])
    assert "promotedBookings" in schemas["Cancellation"]["required"]
    limit = schemas["InitializeRequest"]["properties"]["maxPerBooking"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 100, 10)
    assert schemas["BookRequest"]["properties"]["quantity"]["default"] == 1
    assert schemas["CancelRequest"]["properties"]["quantity"]["minimum"] == 1
    assert "reduced" in schemas["LedgerEntry"]["properties"]["kind"]["enum"]


def test_the_ledger_kinds_of_the_document_are_those_the_database_allows(document, engine):
    with engine.connect() as conn:
        check = conn.execute(
            text("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'ck_booking_events_kind_known'")
        ).scalar_one()

    assert sorted(document["components"]["schemas"]["LedgerEntry"]["properties"]["kind"]["enum"]) == sorted(
        re.findall(r"'(\w+)'", check)
    )
