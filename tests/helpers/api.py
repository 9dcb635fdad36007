"""The app under test as its clients see it: the admin token the tests use, and problem+json answers."""

from __future__ import annotations

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
NIL_UUID = "00000000-0000-0000-0000-000000000000"  # a well-formed id that names no event
PROBLEM = "application/problem+json"


def assert_problem(response, status, code):
    """Check that `response` is the contract's problem+json with `status` and `code`; its body."""
    body = response.get_json(force=True)
    assert response.status_code == status, body
    assert response.mimetype == PROBLEM
    assert body["code"] == code and body["status"] == status and body["type"] == "about:blank"
    assert body["title"] and body["requestId"] == response.headers["X-Request-ID"]
    return body
