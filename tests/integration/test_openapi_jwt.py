"""The OpenAPI document in AUTH_MODE=jwt: the bearer-JWT scheme, scopes per operation, 401 and 403."""

import pytest
from openapi_spec_validator import validate

ADMIN = [{"adminToken": []}, {"bearerJwt": ["events:admin"]}]
USER = [{"bearerJwt": []}, {"bearerJwt": ["bookings:any"]}]
# The payment backend, an admin token or the static ADMIN_TOKEN (POST /api/confirm).
CONFIRM = [{"bearerJwt": ["bookings:confirm"]}, {"bearerJwt": ["events:admin"]}, {"adminToken": []}]


@pytest.fixture(scope="module")
def jwt_document(jwt_app):
    return jwt_app.test_client().get("/openapi.json").get_json()


def test_the_jwt_document_is_valid_openapi(jwt_document):
    validate(jwt_document)


def test_the_document_declares_the_bearer_jwt_scheme(jwt_document):
    scheme = jwt_document["components"]["securitySchemes"]["bearerJwt"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")


@pytest.mark.parametrize(
    ("path", "method", "security"),
    [
        ("/api/initialize", "post", ADMIN),
        ("/api/events/{event_id}/history", "get", ADMIN),
        ("/api/book", "post", USER),
        ("/api/cancel", "post", USER),
        ("/api/booking-status/{event_id}/{user_id}", "get", USER),
        ("/api/users/{user_id}/bookings", "get", USER),
        ("/api/events", "get", ADMIN),
        ("/api/events/{event_id}", "patch", ADMIN),
        ("/api/events/{event_id}/cancel", "post", ADMIN),
        ("/api/events/{event_id}/waiting-list", "get", ADMIN),
        ("/api/events/{event_id}/bookings", "get", ADMIN),
        ("/api/confirm", "post", CONFIRM),
    ],
)
def test_each_protected_operation_lists_its_scopes_and_its_401_and_403(jwt_document, path, method, security):
    operation = jwt_document["paths"][path][method]
    assert operation["security"] == security
    assert {"401", "403"} <= set(operation["responses"])


def test_the_public_status_route_has_no_security(jwt_document):
    operation = jwt_document["paths"]["/api/status/{event_id}"]["get"]
    assert "security" not in operation and "401" not in operation["responses"]


def test_a_401_documents_its_www_authenticate_header(jwt_document):
    assert "WWW-Authenticate" in jwt_document["components"]["responses"]["UNAUTHORIZED"]["headers"]


def test_the_403_response_names_the_forbidden_code(jwt_document):
    assert "`forbidden`" in jwt_document["components"]["responses"]["FORBIDDEN"]["description"]


def test_in_jwt_mode_user_id_is_optional_in_booking_bodies(jwt_document):
    for request in ("BookRequest", "CancelRequest"):
        assert jwt_document["components"]["schemas"][request]["required"] == ["eventId"]
