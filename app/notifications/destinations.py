"""The SSRF guard: a webhook may reach only public addresses, unless WEBHOOK_ALLOW_PRIVATE=true.

The check runs twice: when a webhook is registered (a clear 400 for an obvious mistake), and at each
send, on the very address the sender then connects to (`public_address`). A name that resolves to a
public address at registration and to 127.0.0.1 later (DNS rebinding) is thus caught at the send:
the sender never resolves the name a second time, it connects to the address checked here.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from app.booking.domain import quoted
from app.notifications.model import UnsafeDestination

SCHEMES = {"http": 80, "https": 443}
Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (the system resolver, as any client would use)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise UnsafeDestination(f"{quoted(host)} does not resolve ({error})") from None
    return [info[4][0] for info in infos]


def check_url(url: str, allow_private: bool, resolver: Resolver = resolve) -> None:
    """Refuse a URL that is not http(s), or whose host resolves to any non-public address."""
    host, port = host_and_port(url)
    if not allow_private:
        public_address(host, port, resolver)


def host_and_port(url: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as error:  # a bad IPv6 literal, a port out of range
        raise UnsafeDestination(f"is not a valid URL ({quoted(str(error))})") from None  # it may quote the URL
    if parts.scheme not in SCHEMES or not host:
        raise UnsafeDestination("must be an http or https URL with a host")
    if parts.username or parts.password:
        raise UnsafeDestination("must not carry credentials; receivers verify the signature instead")
    return host, port or SCHEMES[parts.scheme]


def public_address(host: str, port: int, resolver: Resolver = resolve) -> str:
    """The address to connect to for `host`: the first it resolves to, if every one of them is public.

    Every one, not just the first: a name with one public and one private address would otherwise
    reach the private one whenever the order changes.
    """
    addresses = resolver(host, port)
    if not addresses:
        raise UnsafeDestination(f"{quoted(host)} does not resolve")
    for address in addresses:
        if not is_public(address):
            raise UnsafeDestination(f"{quoted(host)} resolves to {address}, which is not a public address")
    return addresses[0]


def is_public(address: str) -> bool:
    """Globally routable: not loopback, private, link-local (169.254.169.254, the cloud metadata
    address, is one), shared, reserved, multicast or unspecified; an IPv4-mapped IPv6 address is
    judged by its IPv4 address."""
    ip = ipaddress.ip_address(address.split("%")[0])  # an IPv6 zone id (fe80::1%eth0) is link-local
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast
