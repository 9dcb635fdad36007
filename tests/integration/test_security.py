"""Security headers on every response, a strict CSP on /docs, and CORS only from the allow-list."""

import pytest

from app.web.security import API_CSP, DOCS_CSP
from tests.helpers.api import NIL_UUID

ALLOWED = "https://tickets.example"


@pytest.fixture
def cors_client(make_app):
    return make_app(cors_origins=(ALLOWED, "https://admin.example")).test_client()


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", f"/api/status/{NIL_UUID}"),
        ("post", "/api/book"),
        ("get", "/healthz"),
        ("get", "/openapi.json"),
        ("get", "/metrics"),
        ("get", "/nowhere"),
    ],
)
def test_every_answer_is_nosniff_no_referrer_no_store_and_unframeable(client, method, path):
    headers = getattr(client, method)(path, json={} if method == "post" else None).headers
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"
    assert headers["Content-Security-Policy"] == API_CSP


def test_docs_page_has_a_csp_that_allows_its_own_scripts_only(client):
    headers = client.get("/docs").headers
    assert headers["Content-Security-Policy"] == DOCS_CSP and headers["X-Content-Type-Options"] == "nosniff"
    directives = dict(d.strip().split(" ", 1) for d in DOCS_CSP.split(";"))
    assert directives["script-src"] == "'self'" and directives["default-src"] == "'none'"


def test_swagger_ui_files_may_be_cached(client):
    with client.get("/docs/assets/swagger-ui.css") as response:
        assert response.headers["Cache-Control"] != "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_cors_is_off_by_default(client):
    response = client.get(f"/api/status/{NIL_UUID}", headers={"Origin": ALLOWED})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_an_allowed_origin_may_call_and_read_the_request_id(cors_client):
    headers = cors_client.get(f"/api/status/{NIL_UUID}", headers={"Origin": ALLOWED}).headers
    assert headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "X-Request-ID" in headers["Access-Control-Expose-Headers"] and "Origin" in headers["Vary"]
    assert "Idempotent-Replayed" in headers["Access-Control-Expose-Headers"]


@pytest.fixture
def one_origin_client(make_app):
    return make_app(cors_origins=(ALLOWED,)).test_client()


@pytest.mark.parametrize("origin", [ALLOWED, "https://evil.example", None], ids=["allowed", "refused", "none"])
def test_with_cors_on_every_api_answer_varies_on_origin(one_origin_client, origin):
    # With one allowed origin flask-cors adds no Vary, and it never does on an answer it refused.
    headers = {"Origin": origin} if origin else {}
    response = one_origin_client.get(f"/api/status/{NIL_UUID}", headers=headers)
    assert response.headers.get_all("Vary") == ["Origin"]


def test_an_origin_off_the_list_gets_no_cors_headers(cors_client):
    response = cors_client.get(f"/api/status/{NIL_UUID}", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_a_preflight_from_an_allowed_origin_allows_json_posts(cors_client):
    response = cors_client.options(
        "/api/book",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code == 200 and response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "content-type" in response.headers["Access-Control-Allow-Headers"].lower()


def test_preflights_do_not_use_up_the_rate_limit(make_app):
    client = make_app(rate_limit="1 per minute", cors_origins=(ALLOWED,)).test_client()
    preflight = {"Origin": ALLOWED, "Access-Control-Request-Method": "POST"}
    assert [client.options("/api/book", headers=preflight).status_code for _ in range(3)] == [200, 200, 200]
