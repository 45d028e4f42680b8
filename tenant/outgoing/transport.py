"""How outgoing webhooks are sent: httpx's HTTP/1.1 connections (``httpcore``) in a
small per-origin keep-alive pool (:class:`Sender`), with the request forgery guard at
connect time. Imported by the delivery worker only.

A connection hands its network backend a host name; the backend here resolves
it, refuses it if any address is forbidden (:func:`tenant.outgoing.guard.checked_addresses`)
and connects to an address it checked, so a name that resolved to a public address at
registration and to 127.0.0.1 now is refused, and no second lookup between the check and
the connection can differ. TLS still verifies the certificate against the host name.
Redirects are not followed and no proxy from the environment is used.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Iterable
from typing import Any

import httpcore
from httpcore._backends.auto import AutoBackend

from tenant.outgoing.guard import checked_addresses


class GuardedBackend(AutoBackend):
    def __init__(self, *, allow_private: bool) -> None:
        super().__init__()
        self.allow_private = allow_private

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        addresses = await checked_addresses(host, port, allow_private=self.allow_private)
        error: Exception | None = None
        for address in addresses:
            try:
                return await super().connect_tcp(str(address), port, timeout=timeout,
                                                 local_address=local_address,
                                                 socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error


#: Idle keep-alive connections kept per origin, and how long one may sit idle.
MAX_IDLE_PER_ORIGIN = 32
KEEPALIVE_SECONDS = 5.0
#: How much of a receiver's answer is read (the status is what counts); a connection whose
#: answer is longer is closed instead of reused.
MAX_RESPONSE_BYTES = 64 * 1024
_PRUNE_EVERY_SECONDS = 30.0


class Sender:
    """POSTs over httpx's own HTTP/1.1 connections (``httpcore``), pooled per origin.

    Not ``httpx.AsyncClient``: its connection pool looks at every pooled connection
    (an ``anyio`` socket query each) on every request and again on every response, so
    with a worker's 8–16 deliveries in flight to one receiver a POST cost ~1.8 ms of CPU
    (``bench/README.md``, outgoing delivery row). Here a request takes the most recently
    used idle connection to its origin, or opens one through :class:`GuardedBackend`:
    ~0.4 ms. No redirects are followed, no proxy is used, at most
    ``MAX_RESPONSE_BYTES`` of an answer are read.
    """

    def __init__(self, *, timeout_seconds: int, allow_private: bool) -> None:
        self.backend = GuardedBackend(allow_private=allow_private)
        t = float(timeout_seconds)
        self.timeouts = {"connect": t, "read": t, "write": t, "pool": t}
        self.idle: dict[tuple[bytes, bytes, int], list[httpcore.AsyncHTTPConnection]] = {}
        self._pruned_at = time.monotonic()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """Send ``body``; the answer's status. Raises what httpcore raises for a refused
        connection, a timeout or a broken answer, and the guard's error for a refused
        address."""
        target = httpcore.URL(url)
        origin = target.origin
        key = (origin.scheme, origin.host, origin.port)
        connection = await self._checkout(key)
        if connection is None:
            connection = httpcore.AsyncHTTPConnection(
                origin, network_backend=self.backend, keepalive_expiry=KEEPALIVE_SECONDS)
        request = httpcore.Request(
            b"POST", target, content=body, extensions={"timeout": self.timeouts},
            headers=[(b"host", _host_header(origin)), (b"user-agent", USER_AGENT),
                     (b"content-length", str(len(body)).encode()),
                     *((k.encode(), v.encode()) for k, v in headers.items())])
        reusable = False
        try:
            response = await connection.handle_async_request(request)
            try:
                read = 0
                async for chunk in response.aiter_stream():  # type: ignore[union-attr]
                    read += len(chunk)
                    if read > MAX_RESPONSE_BYTES:
                        break
                else:
                    reusable = True
            finally:
                await response.aclose()
            return response.status
        finally:
            if not (reusable and connection.is_idle() and self._checkin(key, connection)):
                await connection.aclose()

    async def _checkout(self, key: tuple[bytes, bytes, int]
                        ) -> httpcore.AsyncHTTPConnection | None:
        if time.monotonic() - self._pruned_at > _PRUNE_EVERY_SECONDS:
            await self._prune()
        idle = self.idle.get(key)
        while idle:
            connection = idle.pop()
            if connection.is_idle() and not connection.has_expired():
                return connection
            await connection.aclose()
        return None

    def _checkin(self, key: tuple[bytes, bytes, int],
                 connection: httpcore.AsyncHTTPConnection) -> bool:
        """Keep ``connection`` for the next request to its origin; False when the
        origin has enough idle ones already (the caller closes it)."""
        idle = self.idle.setdefault(key, [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            return False
        idle.append(connection)
        return True

    async def _prune(self) -> None:
        """Close idle connections that expired (receivers not sent to lately)."""
        self._pruned_at = time.monotonic()
        for key in list(self.idle):
            keep = []
            for connection in self.idle[key]:
                if connection.has_expired():
                    await connection.aclose()
                else:
                    keep.append(connection)
            if keep:
                self.idle[key] = keep
            else:
                del self.idle[key]

    async def aclose(self) -> None:
        for connections in self.idle.values():
            for connection in connections:
                await connection.aclose()
        self.idle.clear()


USER_AGENT = b"Paymesh-Webhooks/1"


def _host_header(origin: httpcore.Origin) -> bytes:
    default = {b"http": 80, b"https": 443}.get(origin.scheme)
    return origin.host if origin.port == default else origin.host + b":%d" % origin.port


_senders: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                    dict[tuple[int, bool], Sender]] = weakref.WeakKeyDictionary()


def sender(*, timeout_seconds: int, allow_private: bool) -> Sender:
    """This event loop's sender for these settings (made on first use)."""
    mine = _senders.setdefault(asyncio.get_running_loop(), {})
    key = (timeout_seconds, allow_private)
    found = mine.get(key)
    if found is None:
        found = mine[key] = Sender(timeout_seconds=timeout_seconds, allow_private=allow_private)
    return found
