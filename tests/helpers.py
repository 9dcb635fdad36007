"""Assertions and request bodies that several test modules share."""

import json

PROBLEM = "application/problem+json"


def assert_problem(response, status, code):
    """`response` (a Flask test response) is problem+json with `status` and `code`; its parsed body."""
    body = response.get_json(force=True)
    assert response.status_code == status, body
    assert response.mimetype == PROBLEM
    assert body["code"] == code and body["status"] == status and body["type"] == "about:blank"
    assert body["title"] and body["requestId"] == response.headers["X-Request-ID"]
    return body


def padded(body: dict, size: int) -> bytes:
    """`body` as JSON followed by spaces up to `size` bytes: still valid JSON, of exactly that size."""
    raw = json.dumps(body).encode()
    return raw + b" " * (size - len(raw))
