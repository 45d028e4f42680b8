"""The HTTP client outgoing webhooks are sent with: the request forgery guard at connect
time. Imported by the delivery worker only (it pulls in httpx).

httpx hands its connection pool a host name; the pool's network backend here resolves
it, refuses it if any address is forbidden (:func:`tenant.outgoing.guard.checked_addresses`)
and connects to an address it checked, so a name that resolved to a public address at
registration and to 127.0.0.1 now is refused, and no second lookup between the check and
the connection can differ. TLS still verifies the certificate against the host name.
Redirects are not followed and no proxy from the environment is used.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
from httpcore._backends.auto import AutoBackend

from tenant.outgoing.guard import checked_addresses

# httpx logs every request at INFO: a worker would write a line per delivery (which the
# delivery log already records) through Dramatiq's log pipe, ~0.5 ms of CPU each
logging.getLogger("httpx").setLevel(logging.WARNING)


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


def guarded_client(*, timeout_seconds: int, allow_private: bool) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(retries=0, trust_env=False)
    transport._pool._network_backend = GuardedBackend(allow_private=allow_private)
    return httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False,
                             timeout=httpx.Timeout(float(timeout_seconds)),
                             headers={"user-agent": "Paymesh-Webhooks/1"})


_clients: dict[tuple[int, bool], httpx.AsyncClient] = {}


def client(*, timeout_seconds: int, allow_private: bool) -> httpx.AsyncClient:
    """This process's client for these settings (made on first use)."""
    key = (timeout_seconds, allow_private)
    found = _clients.get(key)
    if found is None or found.is_closed:
        found = _clients[key] = guarded_client(timeout_seconds=timeout_seconds,
                                               allow_private=allow_private)
    return found
