"""Signed POSTs to a receiver, over connections to an address the SSRF guard has just checked.

A batch's URL is resolved once (`Sender.destination`); each address is checked
(app/notifications/destinations.py) and the requests go to the first one, by IP, with the original
name in the Host header and, for https, as the TLS server name (SNI), against which the certificate is
verified. The sender therefore never resolves the name itself, and cannot be sent elsewhere by a second
answer (DNS rebinding). Redirects are not followed: a 3xx is an answer like any other non-2xx.

httpx parses the URL (IDNA names, ports, the Host header); the requests go through httpcore, httpx's
own HTTP/1.1 engine, used directly: httpx's models around each request cost three times the CPU of the
request itself (docs/webhooks.md, "The dispatcher's pace").
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import certifi
import httpcore
import httpx
from standardwebhooks.webhooks import Webhook as Signer

from app.notifications.destinations import Resolver, UnsafeDestination, host_and_port, public_address, resolve

USER_AGENT = "booking-service-webhooks/1"
# What a send may raise for the network and the receiver's HTTP (httpcore has no common base class).
SEND_ERRORS = (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol)
MAX_CONNECTIONS, MAX_IDLE_CONNECTIONS, KEEPALIVE_EXPIRY_S = 100, 20, 5.0  # httpx's defaults


@dataclass(frozen=True)
class Outcome:
    """What one try came to: the status if the receiver answered, else why not."""

    status: int | None
    error: str | None = None
    retry_after_s: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class Destination:
    """Where a batch goes: the URL with the checked address for the name, and the Host header and TLS
    server name that keep the name; or, with `refusal`, why it may not be reached."""

    url: httpcore.URL | None = None
    headers: tuple[tuple[bytes, bytes], ...] = ()
    extensions: dict = field(default_factory=dict)
    host: str = ""
    refusal: str | None = None


class Sender:
    def __init__(
        self,
        timeout_s: float,
        allow_private: bool,
        resolver: Resolver = resolve,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._ssl_context = ssl_context or ssl.create_default_context(cafile=certifi.where())  # httpx's CAs
        self._pools: dict[str, httpcore.ConnectionPool] = {}
        self._pools_lock = threading.Lock()
        self._timeouts = {"connect": timeout_s, "read": timeout_s, "write": timeout_s, "pool": timeout_s}
        self._allow_private, self._resolver = allow_private, resolver

    def close(self) -> None:
        with self._pools_lock:
            for pool in self._pools.values():
                pool.close()

    def destination(self, url: str) -> Destination:
        """`url`'s receiver, its name resolved and checked now; a refusal if it may not be reached."""
        try:
            _, port = host_and_port(url)
            target = httpx.URL(url)
            host = target.raw_host.decode("ascii")  # one spelling of the name for DNS, SNI and Host (IDNA 2008)
            address = self._checked_address(host, port)
        except UnsafeDestination as error:
            return Destination(refusal=f"refused: {error}")
        except httpx.InvalidURL as error:
            return Destination(refusal=f"InvalidURL: {error}"[:500])
        extensions = {"sni_hostname": host} if target.scheme == "https" else {}
        pinned = httpcore.URL(scheme=target.raw_scheme, host=address.encode("ascii"), port=port, target=target.raw_path)
        headers = (
            (b"Host", target.netloc),
            (b"User-Agent", USER_AGENT.encode()),
            (b"Content-Type", b"application/json"),
        )
        return Destination(pinned, headers, {**extensions, "timeout": self._timeouts}, host=host)

    def send(self, destination: Destination, secret: str, message_key: str, body: str) -> Outcome:
        """POST `body`, signed with `secret` the Standard Webhooks way; never raises for the network."""
        if destination.refusal is not None:
            return Outcome(None, destination.refusal)
        content = body.encode()
        signed = tuple(
            (name.encode(), value.encode()) for name, value in signed_headers(secret, message_key, body).items()
        )
        headers = [*destination.headers, *signed, (b"Content-Length", str(len(content)).encode())]
        try:
            response = self._pool(destination.host).request(
                "POST", destination.url, headers=headers, content=content, extensions=destination.extensions
            )
        except SEND_ERRORS as error:
            return Outcome(None, f"{type(error).__name__}: {error}"[:500])
        return Outcome(response.status, None, retry_after_s(_header(response, b"retry-after")))

    def _pool(self, host: str) -> httpcore.ConnectionPool:
        """The connections to `host`'s receivers. One pool per name: a pool keys its connections by address,
        and a TLS connection verified for one name must not carry another name's requests."""
        with self._pools_lock:
            if host not in self._pools:
                self._pools[host] = httpcore.ConnectionPool(
                    ssl_context=self._ssl_context,
                    max_connections=MAX_CONNECTIONS,
                    max_keepalive_connections=MAX_IDLE_CONNECTIONS,
                    keepalive_expiry=KEEPALIVE_EXPIRY_S,
                )
            return self._pools[host]

    def _checked_address(self, host: str, port: int) -> str:
        if self._allow_private:
            return self._resolver(host, port)[0]
        return public_address(host, port, self._resolver)


def _header(response: httpcore.Response, name: bytes) -> str | None:
    return next((value.decode("latin-1") for key, value in response.headers if key.lower() == name), None)


def signed_headers(secret: str, message_key: str, body: str) -> dict:
    """webhook-id, webhook-timestamp (now, Unix seconds) and webhook-signature (`v1,<base64 HMAC>`)."""
    now = datetime.now(UTC)
    return {
        "webhook-id": message_key,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Signer(secret).sign(message_key, now, body),
    }


def retry_after_s(value: str | None) -> float | None:
    """Retry-After in seconds: a number of seconds, or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    if value.strip().isascii() and value.strip().isdigit():  # "²" is a digit to str.isdigit, not to float()
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": a date in UTC whose sender would not say so (RFC 5322)
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
