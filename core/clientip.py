"""The client's address: one function for rate limits, audit rows and logs.

``X-Forwarded-For`` is believed only when the connection comes from a configured proxy
(``PAYMESH_TRUSTED_PROXIES``: comma-separated IPs or CIDRs, default none). The client is
then the right-most address of the header that is not itself a trusted proxy, so a
client cannot pick its own address by sending the header: the proxy appends the address
it saw. Without trusted proxies the header is ignored and the connection's peer is the
client (``paymesh run`` turns uvicorn's own proxy-header handling off, so the peer is
the real one).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from litestar.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_trusted: tuple[Network, ...] = ()


def parse_networks(spec: Iterable[str]) -> tuple[Network, ...]:
    """``["10.0.0.0/8", "127.0.0.1"]`` → networks; raises ``ValueError`` on a bad entry."""
    networks = []
    for item in (i.strip() for i in spec):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"PAYMESH_TRUSTED_PROXIES: {item!r} is not an IP address or "
                             "CIDR") from None
    return tuple(networks)


def set_trusted_proxies(spec: Iterable[str]) -> None:
    """Configure the trusted proxies (the composition root calls this from the settings)."""
    global _trusted
    _trusted = parse_networks(spec)


def trusted_proxies() -> tuple[Network, ...]:
    return _trusted


def _is_trusted(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _trusted)


def _forwarded_for(scope: Scope) -> str | None:
    values = [v.decode("latin-1") for k, v in scope.get("headers", ())
              if k == b"x-forwarded-for"]
    return ",".join(values) if values else None


def client_ip(scope: Scope) -> str | None:
    """The client's IP address for this request (``None`` if the server did not say)."""
    client = scope.get("client")
    peer = client[0] if client else None
    if not _trusted or peer is None or not _is_trusted(peer):
        return peer
    header = _forwarded_for(scope)
    if not header:
        return peer
    hops = [hop.strip() for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a malformed hop: stop believing the chain
        if not _is_trusted(hop):
            return hop
    return hops[0] if hops else peer
