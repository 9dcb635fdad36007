"""AUTH_MODE=jwt: which bearer tokens are accepted, against a real JWKS served over HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest

from app.config.identity import JWT, IdentitySettings
from tests.helpers.identity import AUDIENCE, ISSUER, JWKS_PATH, bearer, new_signing_key

OWN_BOOKINGS = "/api/users/alice/bookings"
INVALID_TOKEN = 'Bearer error="invalid_token"'


def assert_unauthorized(response) -> None:
    assert response.status_code == 401, response.get_json()
    assert response.get_json()["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == INVALID_TOKEN


def jwks_requests(httpserver) -> int:
    return sum(request.path == JWKS_PATH for request, _ in httpserver.log)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_forged_with(secret: bytes, claims: dict, kid: str) -> str:
    """A token signed HS256 with `secret` by hand: PyJWT itself refuses a PEM key as an HMAC secret."""
    signing_input = (
        f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': kid}).encode())}.{b64(json.dumps(claims).encode())}"
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def test_a_token_signed_by_a_published_key_is_accepted(jwks_app, publish, signing_key):
    publish(signing_key)
    response = jwks_app().test_client().get("/api/users/dana/bookings", headers=bearer(signing_key.token("dana")))
    assert response.status_code == 200 and response.get_json() == {"bookings": [], "nextAfter": None}


def test_a_rotated_key_is_accepted_without_a_restart(jwks_app, publish, signing_key):
    client = jwks_app(refetch_s=30).test_client()  # the first refetch is not held back by the first fetch
    publish(signing_key)
    assert client.get(OWN_BOOKINGS, headers=bearer(signing_key.token("alice"))).status_code == 200
    rotated = new_signing_key("key-2")
    publish(rotated)
    assert client.get(OWN_BOOKINGS, headers=bearer(rotated.token("alice"))).status_code == 200


def test_a_flood_of_unknown_kids_refetches_the_set_once_per_cooldown(jwks_app, publish, signing_key, httpserver):
    client = jwks_app(refetch_s=30).test_client()
    publish(signing_key)
    assert client.get(OWN_BOOKINGS, headers=bearer(signing_key.token("alice"))).status_code == 200
    for number in range(20):  # only the kids matter: no key of the set is looked at
        token = jwt.encode({"sub": "alice"}, "x" * 32, algorithm="HS256", headers={"kid": f"bogus-{number}"})
        assert_unauthorized(client.get(OWN_BOOKINGS, headers=bearer(token)))
    assert jwks_requests(httpserver) == 2  # the first fetch, then one refetch for the first unknown kid


# Each case's claims from the time of the test (not of collection, which may be minutes earlier).
WRONG_CLAIMS = {
    "expired": lambda now: {"exp": now - 60},  # beyond the 30 s leeway
    "not-yet-valid": lambda now: {"nbf": now + 120},
    "wrong-aud": lambda now: {"aud": "another-api"},
    "wrong-iss": lambda now: {"iss": "https://another-idp.test/"},
    "no-exp": lambda now: {"exp": None},
    "no-sub": lambda now: {"sub": None},
    "sub-too-long": lambda now: {"sub": "x" * 129},
    "sub-with-a-newline": lambda now: {"sub": "ali\nce"},
}


@pytest.mark.parametrize("case", WRONG_CLAIMS)
def test_a_token_with_wrong_claims_is_a_401(jwks_app, publish, signing_key, case):
    publish(signing_key)
    token = signing_key.token("alice", **WRONG_CLAIMS[case](int(time.time())))
    assert_unauthorized(jwks_app().test_client().get(OWN_BOOKINGS, headers=bearer(token)))


def test_a_token_expired_within_the_leeway_is_accepted(jwks_app, publish, signing_key):
    publish(signing_key)
    token = signing_key.token("alice", exp=int(time.time()) - 10)
    assert jwks_app().test_client().get(OWN_BOOKINGS, headers=bearer(token)).status_code == 200


def test_a_token_signed_by_a_foreign_key_under_a_trusted_kid_is_a_401(jwks_app, publish, signing_key, foreign_key):
    publish(signing_key)
    assert_unauthorized(jwks_app().test_client().get(OWN_BOOKINGS, headers=bearer(foreign_key.token("alice"))))


def test_an_unsigned_alg_none_token_is_a_401(jwks_app, publish, signing_key):
    publish(signing_key)
    claims = jwt.decode(signing_key.token("alice"), options={"verify_signature": False})
    token = jwt.encode(claims, None, algorithm="none", headers={"kid": signing_key.kid})
    assert_unauthorized(jwks_app().test_client().get(OWN_BOOKINGS, headers=bearer(token)))


def test_hs256_signed_with_the_rsa_public_key_is_a_401(jwks_app, publish, signing_key):
    publish(signing_key)
    claims = jwt.decode(signing_key.token("alice"), options={"verify_signature": False})
    token = hs256_forged_with(signing_key.public_pem().encode(), claims, signing_key.kid)
    assert_unauthorized(jwks_app().test_client().get(OWN_BOOKINGS, headers=bearer(token)))


def test_hs256_signed_with_the_pem_public_key_is_a_401_with_a_static_key(jwt_client, signing_key):
    claims = jwt.decode(signing_key.token("alice"), options={"verify_signature": False})
    token = hs256_forged_with(signing_key.public_pem().encode(), claims, signing_key.kid)
    assert_unauthorized(jwt_client.get(OWN_BOOKINGS, headers=bearer(token)))


def test_a_token_without_kid_is_a_401_without_fetching_the_set(jwks_app, publish, signing_key, httpserver):
    publish(signing_key)
    claims = jwt.decode(signing_key.token("alice"), options={"verify_signature": False})
    token = jwt.encode(claims, signing_key.private, algorithm="RS256")
    assert_unauthorized(jwks_app().test_client().get(OWN_BOOKINGS, headers=bearer(token)))
    assert jwks_requests(httpserver) == 0


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer not-a-jwt", "Basic YWxpY2U6cHc=", "alice"])
def test_a_missing_or_malformed_token_is_a_401(jwt_client, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    assert_unauthorized(jwt_client.get(OWN_BOOKINGS, headers=headers))


def test_a_malformed_token_is_a_401_without_fetching_the_set(jwks_app, httpserver):
    assert_unauthorized(jwks_app().test_client().get(OWN_BOOKINGS, headers=bearer("not-a-jwt")))
    assert jwks_requests(httpserver) == 0


# The kid is read from the header segment alone (app/web/tokens.py, _unverified_kid).
@pytest.mark.parametrize(
    "token",
    ["W10.e30.x", "eyJraWQiOiAiayJ9.e30", "%%%.e30.x", "eyJraWQiOiAxfQ.e30.x"],
    ids=["header a JSON array", "two segments", "header not base64", "a numeric kid"],
)
def test_a_token_whose_header_names_no_usable_kid_is_a_401_without_fetching_the_set(jwks_app, httpserver, token):
    assert_unauthorized(jwks_app().test_client().get(OWN_BOOKINGS, headers=bearer(token)))
    assert jwks_requests(httpserver) == 0


def test_a_token_in_the_query_string_is_ignored(jwt_client, signing_key):
    assert_unauthorized(jwt_client.get(f"{OWN_BOOKINGS}?access_token={signing_key.token('alice')}"))


def test_provider_down_a_cached_key_still_works_and_an_uncached_one_is_a_503(
    jwks_app, publish, signing_key, httpserver
):
    client = jwks_app().test_client()
    publish(signing_key)
    assert client.get(OWN_BOOKINGS, headers=bearer(signing_key.token("alice"))).status_code == 200
    httpserver.clear_all_handlers()
    httpserver.expect_request(JWKS_PATH).respond_with_data("down for maintenance", status=503)
    httpserver.clear_log()

    assert client.get(OWN_BOOKINGS, headers=bearer(signing_key.token("alice"))).status_code == 200
    uncached = [client.get(OWN_BOOKINGS, headers=bearer(new_signing_key(f"key-{n}").token("alice"))) for n in (2, 3)]
    assert [(r.status_code, r.get_json()["code"]) for r in uncached] == [(503, "unavailable")] * 2
    assert all(int(r.headers["Retry-After"]) >= 1 for r in uncached)
    assert jwks_requests(httpserver) == 1, "a provider that is down is tried once per cooldown"


def test_provider_unreachable_is_a_503_and_is_not_retried_before_the_cooldown(make_app, signing_key):
    settings = IdentitySettings(mode=JWT, jwks_url="http://127.0.0.1:1/jwks", issuer=ISSUER, audience=AUDIENCE)
    client = make_app(identity=settings).test_client()
    first = client.get(OWN_BOOKINGS, headers=bearer(signing_key.token("alice")))
    second = client.get(OWN_BOOKINGS, headers=bearer(signing_key.token("alice")))
    assert (first.status_code, second.status_code) == (503, 503)
    assert 25 <= int(second.headers["Retry-After"]) <= 30
    assert second.get_json()["detail"] == "the identity provider is unavailable; retry shortly"


@pytest.mark.parametrize("answer", ["<html>login</html>", "[]", '{"keys": []}'])
def test_a_provider_answering_no_key_set_is_a_503(jwks_app, signing_key, httpserver, answer):
    httpserver.expect_request(JWKS_PATH).respond_with_data(answer, content_type="application/json")
    response = jwks_app().test_client().get(OWN_BOOKINGS, headers=bearer(signing_key.token("alice")))
    assert response.status_code == 503


def test_a_public_route_ignores_an_invalid_token(jwt_client):
    response = jwt_client.get("/api/status/00000000-0000-0000-0000-000000000000", headers=bearer("garbage"))
    assert response.get_json()["code"] == "event_not_found"
