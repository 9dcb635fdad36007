"""Signed POSTs to a receiver, over connections to an address the SSRF guard has just checked.

A batch's URL is resolved once (`Sender.destination`); each address is checked
(app/notifications/destinations.py) and the requests go to the first one, by IP, with the original
name in the Host header and, for https, as the TLS server name (SNI), against which the certificate is
verified. The sender therefore never resolves the name itself, and cannot be sent elsewhere by a second
answer (DNS rebinding). Redirects are not followed: a 3xx is an answer like any other non-2xx.

httpx parses the URL (IDNA names, ports, the Host header); the requests go through httpcore, httpx's
own HTTP/1.1 engine, used directly: httpx's models around each request cost three times the CPU of the
request itself (docs/webhooks.md, "The dispatcher's pace").

A receiver is not trusted to be quick or brief (issue 23, docs/webhooks.md "Bounds on a receiver's
reply"): a send has one deadline for all of it, connect to the reply's last byte, which every wait on
the socket is cut to (`DeadlineBackend`: httpcore's timeouts bound each read alone, and a reply that
trickles a byte a second never trips them); and at most `MAX_REPLY_BYTES` of the reply's body are read
before the connection is closed.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
# The body of a reply is read (to keep the connection for the next send) up to this, and nothing of it is
# kept: a receiver's answer is its status. 64 KiB is far more than any acknowledgement, and one read of
# httpcore's (64 KiB) at a time per sender. The headers are bounded by httpcore itself: 100 KiB.
MAX_REPLY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Outcome:
    """What one try came to: the status if the receiver answered, else why not."""

    status: int | None
    error: str | None = None
    retry_after_s: float | None = None

    @property
    def delivered(self) -> bool:
        """A 2xx whose reply came whole within the bounds: one past its deadline or size is not a delivery."""
        return self.error is None and self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class Destination:
    """Where a batch goes: the URL with the checked address for the name, and the Host header and TLS
    server name that keep the name; or, with `refusal`, why it may not be reached."""

    url: httpcore.URL | None = None
    headers: tuple[tuple[bytes, bytes], ...] = ()
    extensions: dict = field(default_factory=dict)
    host: str = ""
    refusal: str | None = None


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own sockets, with every wait (connect, TLS handshake, write, read) cut to what is left
    of the deadline of the send under way in this thread; once it has passed, the next wait times out at once."""

    def __init__(self) -> None:
        self._sockets = httpcore.SyncBackend()
        self._local = threading.local()

    @contextmanager
    def deadline(self, at: float) -> Iterator[None]:
        """Sends by this thread within the block end by `at` (time.monotonic())."""
        self._local.at = at
        try:
            yield
        finally:
            self._local.at = None

    def left_s(self, timeout: float | None, expired: type[httpcore.TimeoutException]) -> float | None:
        at = getattr(self._local, "at", None)
        if at is None:
            return timeout
        left = at - time.monotonic()
        if left <= 0:
            raise expired("the send's deadline has passed")
        return left if timeout is None else min(timeout, left)

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None) -> httpcore.NetworkStream:
        timeout = self.left_s(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._sockets.connect_tcp(host, port, timeout, local_address, socket_options), self)


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every wait is cut to the current send's deadline (`DeadlineBackend`)."""

    def __init__(self, stream: httpcore.NetworkStream, backend: DeadlineBackend) -> None:
        self._stream, self._backend = stream, backend

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._backend.left_s(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._backend.left_s(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> httpcore.NetworkStream:
        timeout = self._backend.left_s(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, timeout), self._backend)

    def get_extra_info(self, info: str):
        return self._stream.get_extra_info(info)


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
        self._backend = DeadlineBackend()
        self.timeout_s = timeout_s  # the deadline of a whole send; each wait is bounded by what is left of it
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

    def send(
        self, destination: Destination, secret: str, message_key: str, body: str, deadline: float | None = None
    ) -> Outcome:
        """POST `body`, signed with `secret` the Standard Webhooks way, and read the reply, all of it by
        `deadline` (time.monotonic(); default: `timeout_s` from now); never raises for the network."""
        if destination.refusal is not None:
            return Outcome(None, destination.refusal)
        content = body.encode()
        signed = tuple(
            (name.encode(), value.encode()) for name, value in signed_headers(secret, message_key, body).items()
        )
        headers = [*destination.headers, *signed, (b"Content-Length", str(len(content)).encode())]
        request = {"headers": headers, "content": content, "extensions": destination.extensions}
        with self._backend.deadline(time.monotonic() + self.timeout_s if deadline is None else deadline):
            try:
                with self._pool(destination.host).stream("POST", destination.url, **request) as response:
                    return self._reply(response)
            except SEND_ERRORS as error:
                return Outcome(None, self._failure(error))

    def _reply(self, response: httpcore.Response) -> Outcome:
        """The receiver's answer, its body read and dropped, unless it is too large or too slow: then the
        connection is closed (leaving the block that opened the response) and the try is a failure."""
        status, retry_after = response.status, retry_after_s(_header(response, b"retry-after"))
        try:
            if _body_exceeds(response, MAX_REPLY_BYTES):
                return Outcome(
                    status, f"reply too large: HTTP {status} with a body over {MAX_REPLY_BYTES} bytes", retry_after
                )
        except SEND_ERRORS as error:
            return Outcome(status, f"HTTP {status}, then {self._failure(error)}", retry_after)
        return Outcome(status, None, retry_after)

    def _failure(self, error: Exception) -> str:
        if isinstance(error, httpcore.TimeoutException):
            return f"deadline: no whole reply within the send's {self.timeout_s:g} s (WEBHOOK_TIMEOUT_S): {type(error).__name__}"
        return f"{type(error).__name__}: {error}"[:500]

    def _pool(self, host: str) -> httpcore.ConnectionPool:
        """The connections to `host`'s receivers. One pool per name: a pool keys its connections by address,
        and a TLS connection verified for one name must not carry another name's requests."""
        with self._pools_lock:
            if host not in self._pools:
                self._pools[host] = httpcore.ConnectionPool(
                    ssl_context=self._ssl_context,
                    network_backend=self._backend,
                    max_connections=MAX_CONNECTIONS,
                    max_keepalive_connections=MAX_IDLE_CONNECTIONS,
                    keepalive_expiry=KEEPALIVE_EXPIRY_S,
                )
            return self._pools[host]

    def _checked_address(self, host: str, port: int) -> str:
        if self._allow_private:
            return self._resolver(host, port)[0]
        return public_address(host, port, self._resolver)


def _body_exceeds(response: httpcore.Response, limit: int) -> bool:
    """Read the body to its end, or until more than `limit` bytes of it have come; whether they did."""
    read = 0
    for chunk in response.iter_stream():
        read += len(chunk)
        if read > limit:
            return True
    return False


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
