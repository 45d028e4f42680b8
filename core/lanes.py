"""A fast lane in front of the Litestar app, for the webhook door.

``POST /webhooks/{tenant}/{provider}`` is the API's busiest endpoint and its work is
small (verify a signature, store the raw event). Through Litestar, the framework's
per-request machinery — routing, the middleware stack, the request and response objects,
the handler's signature model — was about half of its CPU. :class:`FastLanes` answers
such a request itself, with the same tenancy rules, metrics series and error bodies,
and hands everything else to Litestar untouched:

- other methods, paths or scope types;
- a body without ``Content-Length`` or larger than the lane's limit (Litestar refuses
  it with its own 413), read by nobody before Litestar;
- an error that is not a :class:`~core.errors.PaymeshError` (the database away, a bug):
  the request goes to Litestar *with the body already read*, and Litestar's route runs it
  again and answers through the one error translation (:mod:`core.http`). The lane's
  work must therefore be safe to run twice up to its failure; the webhook door's is (its
  store is idempotent per provider event id).

A :class:`~core.errors.PaymeshError` is answered here, with the body Litestar's handler
would give (``exc.to_dict()``), so a refused webhook is counted and logged once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.types import Message, Receive, Scope, Send

from core.errors import PaymeshError
from core.middleware import HttpMetricsMiddleware, resolve_tenant
from core.tenancy import TenantContext, TenantLookup

#: What a lane's work gets: the tenant, the path's last segment, headers (lower-case
#: names), the body; it returns the JSON body of a 200.
Work = Callable[[TenantContext, str, dict[str, str], bytes], Awaitable[bytes]]
_JSON = (b"content-type", b"application/json")


@dataclass(frozen=True, slots=True)
class TenantPathLane:
    """``POST {prefix}{tenant slug}/{name}``: the tenant from the path, no API key."""

    prefix: str  # "/webhooks/"
    route: str  # the Litestar route's template (the metrics label)
    max_body: int
    work: Work


class FastLanes:
    """The API's ASGI app: the lanes, then Litestar (``app``) for everything else.

    Attributes other than the lanes' own are the Litestar app's (``state`` …).
    """

    def __init__(self, app: Any, lanes: list[TenantPathLane], tenants: TenantLookup,
                 metrics: HttpMetricsMiddleware) -> None:
        self.app = app
        self.lanes = lanes
        self.tenants = tenants
        self.metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            for lane in self.lanes:
                if scope["path"].startswith(lane.prefix):
                    if await self._serve(lane, scope, receive, send):
                        return
                    break
        await self.app(scope, receive, send)

    async def _serve(self, lane: TenantPathLane, scope: Scope, receive: Receive,
                     send: Send) -> bool:
        """Answer the request; False (nothing read, nothing sent) to leave it to Litestar."""
        parts = scope["path"][len(lane.prefix):].split("/")
        if len(parts) != 2 or not all(parts):
            return False
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length", "")
        if not length.isdigit() or int(length) > lane.max_body:
            return False
        in_progress = self.metrics.in_progress(("POST", lane.route))
        in_progress.inc()
        try:
            await self._answer(lane, parts, headers, scope, receive, send)
        finally:
            in_progress.dec()
        return True

    async def _answer(self, lane: TenantPathLane, parts: list[str], headers: dict[str, str],
                      scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        body = await _read(receive)
        extra: dict[str, str] | None = None
        try:
            tenant = await resolve_tenant(self.tenants, slug=parts[0])
            status, answer = 200, await lane.work(tenant, parts[1], headers, body)
        except PaymeshError as exc:
            status, answer = exc.status_code, msgspec.json.encode(exc.to_dict())
            extra = getattr(exc, "headers", None)  # Retry-After of a 429
        except Exception:  # noqa: BLE001 - answered by Litestar's error handling instead
            await self.app(scope, _replayed(body, receive), send)
            return
        sent = [_JSON, (b"content-length", str(len(answer)).encode())]
        if extra:
            sent += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": sent})
        await send({"type": "http.response.body", "body": answer})
        self.metrics.record(("POST", lane.route), status, started)


async def _read(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body", False):
            return b"".join(chunks)


def _replayed(body: bytes, receive: Receive) -> Receive:
    """``receive`` for an app that comes after the body was read: the body, then the
    connection's own messages (a disconnect)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay

