"""Bearer JWTs: the verification of a token into a `Caller`, with the keys that the identity settings
(app/config/identity.py) name.

Verification is PyJWT's. With AUTH_JWKS_URL, the identity provider's JWK set is fetched with
PyJWKClient. A key, once fetched, is kept by its `kid` (so a provider that is down does not stop
requests whose key is known); a token with an unknown `kid` refetches the set, at most once per
JWKS_REFETCH_S, and a failed fetch is not tried again sooner, so that a flood of bogus kids cannot
hammer the provider. A key removed from the provider's set stays trusted by a running process until
it restarts. The algorithms are the settings', never the token header's.
"""

from __future__ import annotations

import base64
import json
import math
import time
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt import PyJWKClient, PyJWKClientConnectionError, PyJWKClientError, PyJWKSetError
from marshmallow import ValidationError

from app.booking.domain import quoted
from app.config.identity import IdentitySettings
from app.web.schemas import no_control_characters

ANY_BOOKINGS = "bookings:any"  # a partner backend acting for its users
EVENTS_ADMIN = "events:admin"
LEEWAY_S = 30
JWKS_TIMEOUT_S = 3.0
# How long PyJWKClient keeps the whole set before it reads it again for an unknown kid.
JWKS_LIFESPAN_S = 300
MAX_CACHED_KEYS = 16
MAX_VERIFIED_TOKENS = 4096  # per worker: a few MB of tokens, each kept until it expires
REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]
MAX_SUB_LENGTH = 128  # the sub is the acting userId, which has the same bounds
NOT_VALID = "the bearer token is not valid"
EXPIRED = "the bearer token has expired"
# What PyJWT raises for a token it cannot verify. Not only its own errors: a header naming an algorithm
# of another key type than the key (ES256 for an RSA key) is a TypeError from the key's preparation.
# UnicodeDecodeError and binascii.Error are ValueErrors; deep nesting in a header is a RecursionError.
VERIFICATION_ERRORS = (jwt.PyJWTError, TypeError, ValueError, RecursionError)


class IdentityError(Exception):
    """A request whose caller cannot be established or may not do what it asks."""


class InvalidToken(IdentityError):
    """401: missing, malformed, expired, wrongly signed or wrongly addressed.

    Its text is what the caller reads: one message for every failed check but expiry (which PyJWT
    checks only once the signature holds), so that an anonymous caller learns no key id, algorithm or
    parser message. `reason` says which check failed, for the operator's log line only; it quotes what
    the token says as an error quotes a client's value, cut short (a header may name a 3 KB kid).
    """

    def __init__(self, detail: str = NOT_VALID, reason: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason or detail


class ProviderUnavailable(IdentityError):
    """503: the token's key must be fetched from the identity provider, which does not answer."""

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Caller:
    """Who sends the request: a token's `sub` and scopes, or (sub None) the static ADMIN_TOKEN."""

    sub: str | None
    scopes: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return EVENTS_ADMIN in self.scopes

    @property
    def acts_for_anyone(self) -> bool:
        return ANY_BOOKINGS in self.scopes

    @property
    def scope_id(self) -> str:
        """What an Idempotency-Key is scoped to: the token's sub, or the static admin token."""
        return "admin-token" if self.sub is None else f"sub:{self.sub}"


STATIC_ADMIN = Caller(sub=None, scopes=frozenset({EVENTS_ADMIN}))


class TokenVerifier:
    """Turns a bearer token into a Caller, or raises InvalidToken / ProviderUnavailable."""

    def __init__(self, settings: IdentitySettings, clock=time.time) -> None:
        self.settings = settings
        self._provider = ProviderKeys(settings.jwks_url, settings.jwks_refetch_s) if settings.jwks_url else None
        self._static_key = load_pem_public_key(settings.public_key_pem.encode()) if settings.public_key_pem else None
        self._verified = VerifiedTokens(MAX_VERIFIED_TOKENS, clock)

    def verify(self, token: str) -> Caller:
        caller = self._verified.get(token)
        if caller is None:
            claims = self._verified_claims(token)
            caller = _caller_from(claims)
            # int(), as PyJWT reads exp (a numeric string passes): valid while now < exp + leeway.
            self._verified.put(token, caller, int(claims["exp"]) + LEEWAY_S)
        return caller

    def _verified_claims(self, token: str) -> dict:
        try:
            claims = jwt.decode(
                token,
                self._key_for(token),
                algorithms=list(self.settings.algorithms),
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=LEEWAY_S,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken(EXPIRED) from None
        except VERIFICATION_ERRORS as error:
            raise InvalidToken(reason=f"{type(error).__name__}: {quoted(str(error))}") from None
        return claims

    def _key_for(self, token: str):
        if self._provider is None:
            return self._static_key or self.settings.secret
        return self._provider.key(_unverified_kid(token))


def _unverified_kid(token: str) -> str:
    """The kid in the token's header, which picks the key. Only the header segment is decoded here:
    PyJWT's get_unverified_header decodes and checks all three, which jwt.decode then does again
    (40 of the ~95 us a verify took with a JWKS). Being lenient here is safe: jwt.decode checks the
    header and the rest, strictly, with the key that this kid picks."""
    segments = token.split(".")
    try:
        header = json.loads(base64.urlsafe_b64decode(segments[0] + "=" * (-len(segments[0]) % 4)))
    except (ValueError, RecursionError):  # binascii.Error and UnicodeDecodeError are ValueErrors
        header = None
    if len(segments) != 3 or not isinstance(header, dict):
        raise InvalidToken(reason="not three segments with a JSON header")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidToken(reason="the header names no key (kid)")
    return kid


def _caller_from(claims: dict) -> Caller:
    sub = claims["sub"]
    if not isinstance(sub, str) or not 1 <= len(sub) <= MAX_SUB_LENGTH:
        raise InvalidToken(reason=f"the token's sub must be 1..{MAX_SUB_LENGTH} characters")
    try:
        no_control_characters(sub)
    except ValidationError:
        raise InvalidToken(reason="the token's sub must not contain control characters") from None
    scope = claims.get("scope", "")
    return Caller(sub=sub, scopes=frozenset(scope.split() if isinstance(scope, str) else ()))


class VerifiedTokens:
    """Tokens that verified, with their Caller, until their exp plus the leeway: a user's later requests
    with the same token skip the verification (~65 us of CPU). Keyed by the whole raw token, so only
    those very bytes, already verified, match; nothing that failed is kept. A key that leaves the
    provider's set is trusted until restart anyway (ProviderKeys), so this trusts nothing longer than
    the key cache does. Bounded: when full, the oldest entry goes."""

    def __init__(self, size: int, clock) -> None:
        self._size = size
        self._clock = clock
        self._entries: dict[str, tuple[Caller, float]] = {}

    def get(self, token: str) -> Caller | None:
        caller, valid_until = self._entries.get(token, (None, 0.0))
        if caller is not None and self._clock() >= valid_until:
            self._entries.pop(token, None)
            return None
        return caller

    def put(self, token: str, caller: Caller, valid_until: float) -> None:
        if len(self._entries) >= self._size:
            self._entries.pop(next(iter(self._entries)), None)
        self._entries[token] = (caller, valid_until)


class ProviderKeys:
    """The identity provider's keys by kid: PyJWKClient, with refetches and failed attempts spaced out."""

    def __init__(self, url: str, refetch_s: float) -> None:
        self._client = _RateLimitedJWKClient(
            url,
            refetch_s,
            cache_keys=True,
            max_cached_keys=MAX_CACHED_KEYS,
            lifespan=JWKS_LIFESPAN_S,
            timeout=JWKS_TIMEOUT_S,
            cooldown_duration=0,  # PyJWKClient's own cooldown: replaced, see below
        )

    def key(self, kid: str) -> jwt.PyJWK:
        try:
            return self._client.get_signing_key(kid)
        except (PyJWKClientConnectionError, PyJWKSetError) as error:
            raise ProviderUnavailable(
                f"the identity provider's keys cannot be fetched: {error}", self._client.retry_after_s()
            ) from None
        except PyJWKClientError:
            raise InvalidToken(reason=f"no key of the provider has the kid {quoted(kid)!r}") from None


class _RateLimitedJWKClient(PyJWKClient):
    """PyJWKClient, where an unknown kid refetches the set at most once per `refetch_s`, counted from
    the last refetch (PyJWKClient's own cooldown counts from any fetch, so a key rotated soon after
    start-up would wait); and where a failed fetch is not tried again before `refetch_s` either, so
    that while the provider is down each worker tries it once per period, not once per request."""

    def __init__(self, url: str, refetch_s: float, **kwargs) -> None:
        super().__init__(url, **kwargs)
        self.refetch_s = refetch_s
        self._next_refetch = 0.0  # time.monotonic()
        self._next_attempt_after_failure = 0.0

    def get_signing_keys(self, refresh: bool = False):
        if refresh:  # for an unknown kid: held back, the cached set answers (and the kid stays unknown, 401)
            self._raise_while_failing()  # unless the provider is known to be down: it may have the kid (503)
            now = time.monotonic()
            refresh = now >= self._next_refetch
            self._next_refetch = now + self.refetch_s if refresh else self._next_refetch
        return super().get_signing_keys(refresh)

    def fetch_data(self):
        self._raise_while_failing()
        now = time.monotonic()
        try:
            return super().fetch_data()
        # Unreachable, an error status, not JSON (ValueError, which PyJWKClient lets through), no usable key.
        except (PyJWKClientError, PyJWKSetError, ValueError) as error:
            self._next_attempt_after_failure = now + self.refetch_s
            raise PyJWKClientConnectionError(f"the JWKS endpoint did not answer: {error}") from None

    def _raise_while_failing(self) -> None:
        if time.monotonic() < self._next_attempt_after_failure:
            raise PyJWKClientConnectionError("the last attempt failed; the next one waits for the cooldown")

    def retry_after_s(self) -> int:
        return max(1, math.ceil(self._next_attempt_after_failure - time.monotonic()))
