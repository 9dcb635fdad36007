"""Rate limits per client on /api/: budgets, the 429 problem, proxies, and shared Redis storage."""

import os
import uuid
from functools import partial

import pytest

from tests.helpers.api import NIL_UUID, UNREACHABLE_DATABASE_URL, assert_problem

STATUS = f"/api/status/{NIL_UUID}"
BOOK = {"eventId": NIL_UUID, "userId": "u"}


@pytest.fixture
def limited_app(make_app):
    """`make_app` for apps with rate limits (the session's app has none), without a write budget unless set."""
    return partial(make_app, rate_limit_write="")


def statuses(client, count, path=STATUS, **kwargs):
    return [client.get(path, **kwargs).status_code for _ in range(count)]


def test_request_over_the_limit_is_a_429_problem_with_retry_after_and_limit_headers(limited_app):
    client = limited_app(rate_limit="2 per minute").test_client()
    assert statuses(client, 2) == [404, 404]
    response = client.get(STATUS)
    assert "2 per 1 minute" in assert_problem(response, 429, "rate_limited")["detail"]
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert (response.headers["X-RateLimit-Limit"], response.headers["X-RateLimit-Remaining"]) == ("2", "0")


def test_allowed_requests_carry_the_remaining_budget(limited_app):
    client = limited_app(rate_limit="5 per minute").test_client()
    client.get(STATUS)
    assert client.get(STATUS).headers["X-RateLimit-Remaining"] == "3"


def test_a_write_reports_the_write_budget_and_a_read_the_api_budget(limited_app):
    client = limited_app(rate_limit="10 per minute", rate_limit_write="3 per minute").test_client()
    assert client.post("/api/book", json=BOOK).headers["X-RateLimit-Limit"] == "3"
    assert client.get(STATUS).headers["X-RateLimit-Limit"] == "10"


def test_retry_after_comes_only_with_a_429(limited_app):
    response = limited_app(rate_limit="5 per minute").test_client().get(STATUS)
    assert response.status_code == 404 and "Retry-After" not in response.headers


def test_a_503_keeps_its_own_retry_after(limited_app):
    down = limited_app(rate_limit="5 per minute", database_url=UNREACHABLE_DATABASE_URL)
    response = down.test_client().get(STATUS)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"


def test_all_api_routes_share_one_budget(limited_app):
    client = limited_app(rate_limit="3 per minute").test_client()
    client.get(STATUS)
    client.get(f"/api/booking-status/{NIL_UUID}/u")
    client.post("/api/book", json=BOOK)
    assert client.post("/api/cancel", json=BOOK).status_code == 429


def test_writes_have_a_tighter_budget_than_reads(limited_app):
    client = limited_app(rate_limit="10 per minute", rate_limit_write="2 per minute").test_client()
    assert [client.post("/api/book", json=BOOK).status_code for _ in range(3)] == [404, 404, 429]
    assert statuses(client, 3) == [404, 404, 404]


def test_a_refused_request_changes_nothing(limited_app, new_event):
    event = new_event(5)
    client = limited_app(rate_limit="1 per minute").test_client()
    client.get(STATUS)
    assert client.post("/api/book", json={"eventId": event["id"], "userId": "late"}).status_code == 429
    unlimited = limited_app(rate_limit="").test_client()
    assert unlimited.get(f"/api/status/{event['id']}").get_json()["event"]["availableTickets"] == 5


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/"])
def test_operator_routes_are_not_limited(limited_app, path):
    client = limited_app(rate_limit="1 per minute").test_client()
    assert len(set(statuses(client, 3, path))) == 1 and 429 not in statuses(client, 1, path)


@pytest.mark.parametrize(
    "method, path",
    [("GET", "/nowhere"), ("GET", "/docs/nowhere"), ("FOO", "/api/book"), ("POST", "/healthz")],
    ids=["unknown-path", "unknown-path-under-docs", "unknown-method", "wrong-method-on-health"],
)
def test_a_request_that_matches_no_route_is_limited(limited_app, method, path):
    client = limited_app(rate_limit="2 per minute").test_client()
    assert [client.open(path, method=method).status_code for _ in range(3)][2] == 429


def test_empty_rate_limit_disables_limiting(limited_app):
    client = limited_app(rate_limit="", rate_limit_write="1 per minute").test_client()
    assert 429 not in statuses(client, 5) + [client.post("/api/book", json=BOOK).status_code for _ in range(3)]


def test_a_forged_x_forwarded_for_does_not_dodge_the_limit(limited_app):
    client = limited_app(rate_limit="2 per minute").test_client()
    forged = [client.get(STATUS, headers={"X-Forwarded-For": f"10.0.0.{n}"}).status_code for n in range(3)]
    assert forged == [404, 404, 429]


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(limited_app):
    client = limited_app(rate_limit="2 per minute", trusted_proxies=1).test_client()
    first, second = {"X-Forwarded-For": "203.0.113.1"}, {"X-Forwarded-For": "203.0.113.2"}
    assert statuses(client, 3, headers=first) == [404, 404, 429]
    assert statuses(client, 2, headers=second) == [404, 404]


def test_behind_a_trusted_proxy_only_the_entry_it_appended_counts(limited_app):
    client = limited_app(rate_limit="2 per minute", trusted_proxies=1).test_client()
    # The client forges the left entries; our proxy appended the right one, the peer it saw.
    forged = [client.get(STATUS, headers={"X-Forwarded-For": f"10.0.0.{n}, 203.0.113.9"}).status_code for n in range(3)]
    assert forged == [404, 404, 429]


def test_an_ipv6_client_rotating_addresses_in_its_64_shares_one_budget(limited_app):
    client = limited_app(rate_limit="2 per minute").test_client()
    rotating = [f"2001:db8:0:7:{n}::1" for n in range(3)]
    assert [client.get(STATUS, environ_base={"REMOTE_ADDR": peer}).status_code for peer in rotating] == [404, 404, 429]


def test_another_ipv6_64_has_a_budget_of_its_own(limited_app):
    client = limited_app(rate_limit="2 per minute").test_client()
    peers = ["2001:db8:0:7::1", "2001:db8:0:7::2", "2001:db8:0:8::1"]
    assert [client.get(STATUS, environ_base={"REMOTE_ADDR": peer}).status_code for peer in peers] == [404, 404, 404]


def test_an_ipv4_mapped_address_counts_as_its_ipv4_address(limited_app):
    client = limited_app(rate_limit="2 per minute").test_client()
    peers = ["192.0.2.7", "::ffff:192.0.2.7", "192.0.2.7"]
    assert [client.get(STATUS, environ_base={"REMOTE_ADDR": peer}).status_code for peer in peers] == [404, 404, 429]


def test_unreachable_storage_falls_back_to_limiting_in_memory(limited_app):
    client = limited_app(rate_limit="2 per minute", rate_limit_storage_uri="redis://127.0.0.1:1/0").test_client()
    assert statuses(client, 3) == [404, 404, 429]


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0)")
def test_two_instances_sharing_redis_share_one_budget(limited_app):
    shared = {
        "rate_limit": "3 per minute",
        "rate_limit_storage_uri": os.environ["REDIS_URL"],
        "rate_limit_key_prefix": f"booking-test-{uuid.uuid4().hex}",  # a budget of this test's own
    }
    first, second = limited_app(**shared).test_client(), limited_app(**shared).test_client()
    assert statuses(first, 2) + statuses(second, 1) == [404, 404, 404]
    assert statuses(second, 1) == statuses(first, 1) == [429]
