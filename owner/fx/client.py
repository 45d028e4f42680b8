"""The live rate API (``PAYMESH_FX_API_URL``): one GET answering ``{"rates": {…}}`` per USD.

Whatever goes wrong — no answer within the timeout, a refused connection, a non-200
status, a body that is not such a document — is a :class:`FetchFailed` with a short
reason for the log and the ``paymesh_fx_api_failures_total`` counter; the caller falls
through to the next layer. httpx is imported only when a call is made (a worker that
never converts does not load it).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TYPE_CHECKING

from core.fx import RateError, decode_rates

if TYPE_CHECKING:
    import httpx

#: A rate document for every currency is a few kilobytes; more is not a rate document.
MAX_BODY_BYTES = 1024 * 1024


class FetchFailed(Exception):
    """The rate API gave no usable rates; ``reason`` is a metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


async def fetch_rates(http: httpx.AsyncClient, url: str,
                      timeout: float) -> tuple[dict[str, Decimal], list[str]]:
    """The API's rates (and the keys it sent that were refused), within ``timeout``
    seconds in total (connect, headers and body together)."""
    import httpx

    try:
        async with asyncio.timeout(timeout):
            async with http.stream("GET", url, timeout=timeout,
                                   headers={"Accept": "application/json"}) as response:
                if response.status_code != 200:
                    raise FetchFailed("http_status", f"HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise FetchFailed("garbage", "the answer is larger than 1 MiB")
    except TimeoutError:
        raise FetchFailed("timeout", f"no complete answer within {timeout:g} s") from None
    except httpx.TimeoutException:
        raise FetchFailed("timeout", f"no complete answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise FetchFailed("unreachable", type(exc).__name__) from None
    try:
        return decode_rates(bytes(body))
    except RateError as exc:
        raise FetchFailed("garbage", str(exc)) from None
