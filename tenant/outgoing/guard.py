"""The server-side request forgery guard of outgoing webhooks.

A tenant's endpoint URL must not make Paymesh call into its own network: a URL whose
host is, or resolves to, a private, loopback, link-local (cloud metadata at
169.254.169.254), shared (100.64/10), multicast, reserved or unspecified address is
refused — at registration (422 ``url_not_allowed``) and again when a delivery connects
(DNS can change between the two: the delivery resolves the name itself, checks every
address and connects to the address it checked, see :mod:`tenant.outgoing.transport`).
``PAYMESH_WEBHOOK_ALLOW_PRIVATE=1`` lifts the rule (tests, the demo).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from core.errors import UnprocessableError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (Alibaba's metadata)


class UrlNotAllowed(UnprocessableError):
    code = "url_not_allowed"


def check_shape(url: str) -> tuple[str, int]:
    """An absolute http(s) URL with a host (else 422); returns (host, port)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnprocessableError(f"'{url}' is not a valid URL", param="url") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnprocessableError("the URL must be http:// or https:// with a host",
                                 param="url", code="url_invalid")
    if parts.username or parts.password:
        raise UnprocessableError("the URL must not carry credentials", param="url",
                                 code="url_invalid")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def forbidden(address: IPAddress) -> bool:
    """Whether an address is one an outgoing webhook may not reach."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (address.is_private or address.is_loopback or address.is_link_local
            or address.is_multicast or address.is_reserved or address.is_unspecified
            or (isinstance(address, ipaddress.IPv4Address) and address in _SHARED))


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal: itself)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UrlNotAllowed(f"the host '{host}' does not resolve", param="url") from exc
    found: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


async def checked_addresses(host: str, port: int, *, allow_private: bool) -> list[IPAddress]:
    """The addresses to connect to for ``host``: all of them allowed, or 422
    ``url_not_allowed`` (one forbidden address is enough to refuse the host)."""
    addresses = await resolve(host, port)
    if not addresses:
        raise UrlNotAllowed(f"the host '{host}' does not resolve", param="url")
    if not allow_private:
        for address in addresses:
            if forbidden(address):
                raise UrlNotAllowed(
                    f"'{host}' is (or resolves to) a private, loopback or link-local address;"
                    " webhooks go to public addresses only", param="url")
    return addresses


async def check_url(url: str, *, allow_private: bool) -> None:
    """Registration's check: shape, then every address the host resolves to now."""
    host, port = check_shape(url)
    await checked_addresses(host, port, allow_private=allow_private)
