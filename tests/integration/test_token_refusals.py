"""AUTH_MODE=jwt against a hostile caller: whatever a bearer token's header says, with every key source
(the development key, AUTH_JWT_PUBLIC_KEY, a JWKS, an HS256 secret), the answer is a 401 that says the
same thing for every failed check, is counted by the rate limit, and logs the reason, cut short."""

from __future__ import annotations

import base64
import json
from functools import partial

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.config.identity import JWT, IdentitySettings
from app.web.tokens import EXPIRED, NOT_VALID
from tests.helpers.api import assert_problem
from tests.helpers.identity import AUDIENCE, ISSUER, JWKS_PATH, bearer, new_signing_key

OWN_BOOKINGS = "/api/users/alice/bookings"
STATUS = "/api/status/00000000-0000-0000-0000-000000000000"
SECRET = "a-development-secret-of-32-chars!"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def with_header(header: dict | bytes, signature: str = "eA") -> str:
    """A token with this header (a dict as JSON, or raw bytes), an empty payload and a junk signature."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return f"{b64(raw)}.e30.{signature}"


# kid key-1 is the trusted one in the JWKS (tests/helpers/identity.py), so the JWKS hands PyJWT its key.
HOSTILE_TOKENS = {
    "ES256 without kid (the issue's)": "eyJhbGciOiJFUzI1NiJ9.e30.eA",
    "ES256 for an RSA key": with_header({"alg": "ES256", "kid": "key-1"}),
    "RS256 for an EC key": with_header({"alg": "RS256", "kid": "key-1"}),
    "HS256 for a public key": with_header({"alg": "HS256", "kid": "key-1"}),
    "alg none": with_header({"alg": "none", "kid": "key-1"}),
    "alg a number": with_header({"alg": 5, "kid": "key-1"}),
    "header not UTF-8": with_header(b"\xb7\xff{}"),
    "header nested too deep": with_header(b"[" * 3000),
    "signature not base64": with_header({"alg": "RS256", "kid": "key-1"}, signature="%%%"),
    "crit extension": with_header({"alg": "ES256", "kid": "key-1", "crit": ["x" * 500]}),
}


def ec_public_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture(params=["development key", "RSA public key", "EC public key", "JWKS", "HS256 secret"])
def hostile_app(request, make_app, scratch, signing_key, httpserver, publish):
    """`build(**settings)`: an app in jwt mode whose keys come from each source in turn."""
    source = request.param
    if source == "JWKS":
        publish(signing_key)
    env = {"AUTH_MODE": JWT, "AUTH_ISSUER": ISSUER, "AUTH_AUDIENCE": AUDIENCE}
    identity = {
        "development key": lambda: IdentitySettings.from_env({"AUTH_MODE": JWT}, "development", scratch),
        "RSA public key": lambda: IdentitySettings.from_env(
            {**env, "AUTH_JWT_PUBLIC_KEY": signing_key.public_pem()}, "production", scratch
        ),
        "EC public key": lambda: IdentitySettings.from_env(
            {**env, "AUTH_JWT_PUBLIC_KEY": ec_public_pem()}, "production", scratch
        ),
        "JWKS": lambda: IdentitySettings.from_env(
            {**env, "AUTH_JWKS_URL": httpserver.url_for(JWKS_PATH)}, "production", scratch
        ),
        "HS256 secret": lambda: IdentitySettings.from_env({**env, "AUTH_JWT_SECRET": SECRET}, "development", scratch),
    }[source]()
    return partial(make_app, identity=identity)


def log_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("token", HOSTILE_TOKENS.values(), ids=HOSTILE_TOKENS.keys())
def test_a_hostile_token_is_a_401_with_the_one_generic_detail(hostile_app, token):
    response = hostile_app().test_client().get(OWN_BOOKINGS, headers=bearer(token))
    assert assert_problem(response, 401, "unauthorized")["detail"] == NOT_VALID
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_a_hostile_token_on_the_public_route_is_ignored(hostile_app):
    response = hostile_app().test_client().get(STATUS, headers=bearer(HOSTILE_TOKENS["ES256 for an RSA key"]))
    assert_problem(response, 404, "event_not_found")


def test_hostile_tokens_are_counted_by_the_rate_limit(hostile_app):
    client = hostile_app(rate_limit="3 per minute").test_client()
    statuses = [client.get(OWN_BOOKINGS, headers=bearer(token)).status_code for token in HOSTILE_TOKENS.values()]
    assert statuses == [401] * 3 + [429] * (len(HOSTILE_TOKENS) - 3)


def test_a_hostile_token_is_logged_as_refused_with_its_reason_and_no_traceback(hostile_app, capsys):
    client = hostile_app().test_client()
    capsys.readouterr()
    client.get(OWN_BOOKINGS, headers=bearer(HOSTILE_TOKENS["crit extension"]))
    lines = log_lines(capsys)
    refused = [line for line in lines if line["event"] == "token_refused"]
    assert len(refused) == 1 and refused[0]["reason"] != NOT_VALID
    assert "x" * 65 not in refused[0]["reason"]  # the header's 500 characters, cut short
    assert not [line for line in lines if line["event"] == "unhandled_exception" or "exception" in line]


# The JWKS: each check that fails reads alike to the caller; only the log line tells them apart.
def failed_checks(signing_key, foreign_key) -> dict[str, str]:
    return {
        "unknown kid": new_signing_key("key-9").token("alice"),
        "bad signature": foreign_key.token("alice"),
        "algorithm of another key type": with_header({"alg": "ES256", "kid": signing_key.kid}),
        "garbage": "not-a-jwt",
    }


def test_every_failed_check_reads_alike_and_only_the_log_tells_which(
    jwks_app, publish, signing_key, foreign_key, capsys
):
    publish(signing_key)
    client = jwks_app().test_client()
    capsys.readouterr()
    tokens = failed_checks(signing_key, foreign_key)
    details = {client.get(OWN_BOOKINGS, headers=bearer(token)).get_json()["detail"] for token in tokens.values()}
    assert details == {NOT_VALID}
    reasons = [line["reason"] for line in log_lines(capsys) if line["event"] == "token_refused"]
    assert len(set(reasons)) == len(tokens)


def test_an_expired_token_says_it_has_expired(jwks_app, publish, signing_key):
    publish(signing_key)
    token = signing_key.token("alice", exp=1_000_000_000)
    response = jwks_app().test_client().get(OWN_BOOKINGS, headers=bearer(token))
    assert assert_problem(response, 401, "unauthorized")["detail"] == EXPIRED


def test_a_3_kb_kid_is_quoted_nowhere_whole(jwks_app, publish, signing_key, capsys):
    publish(signing_key)
    kid = "<script>" + "k" * 3000
    client = jwks_app().test_client()
    capsys.readouterr()
    response = client.get(OWN_BOOKINGS, headers=bearer(new_signing_key(kid).token("alice")))
    assert kid[:8] not in response.get_data(as_text=True)
    output = capsys.readouterr().out
    (reason,) = [json.loads(line)["reason"] for line in output.splitlines() if "token_refused" in line]
    assert reason.endswith(repr(kid[:64] + "\u2026")) and kid[:65] not in output
