"""The request fingerprint behind Idempotency-Key: what makes two requests the same request."""

from app.web.idempotency import fingerprint

BODY = {"eventId": "e-1", "userId": "Zoë"}


def test_key_order_does_not_change_the_fingerprint():
    assert fingerprint("POST", "/api/book", BODY) == fingerprint("POST", "/api/book", dict(reversed(BODY.items())))


def test_method_path_and_each_value_change_the_fingerprint():
    prints = {
        fingerprint("POST", "/api/book", BODY),
        fingerprint("PUT", "/api/book", BODY),
        fingerprint("POST", "/api/cancel", BODY),
        fingerprint("POST", "/api/book", {**BODY, "userId": "Zoe"}),
        fingerprint("POST", "/api/book", {**BODY, "extra": None}),
    }
    assert len(prints) == 5


def test_the_fingerprint_is_a_sha256_in_hex():
    assert len(fingerprint("POST", "/api/book", BODY)) == 64
