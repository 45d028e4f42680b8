from __future__ import annotations

import uuid
from datetime import datetime
from functools import partial
from typing import Any

import msgspec
from litestar import Controller, MediaType, Request, Response, get, post
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.errors import NotFound
from core.http import page_params
from core.lanes import TenantPathLane
from core.ratelimit import SharedCounter, rate_limited
from core.runtime import Runtime
from core.settings import get_settings
from core.tenancy import TenantContext
from tenant.webhooks import service

#: The ingest route as Litestar labels its metrics (its ``path_template``).
INGEST_ROUTE = "/webhooks/{tenant_slug}/{provider}"
_RECEIVED = msgspec.json.encode({"received": True, "duplicate": False})
_DUPLICATE = msgspec.json.encode({"received": True, "duplicate": True})


_limits: dict[int, SharedCounter] = {}


def _limit(runtime: Runtime) -> SharedCounter:
    """Webhooks per tenant and provider per minute (``PAYMESH_WEBHOOK_RATE_LIMIT``)."""
    limit = runtime.settings.webhook_rate_limit
    counter = _limits.get(limit)
    if counter is None:
        counter = _limits[limit] = SharedCounter("paymesh:ratelimit:webhooks", limit)
    return counter


async def _ingest(runtime: Runtime, tenant: TenantContext, provider: str,
                  headers: dict[str, str], body: bytes) -> bytes:
    """Store the event; the JSON answer, the same whichever door took the request."""
    retry_after = await _limit(runtime).hit(f"{tenant.id}:{provider}")
    if retry_after is not None:
        raise rate_limited(retry_after, "webhooks for this tenant and provider")
    _, created = await service.ingest(runtime, tenant, provider, headers, body)
    return _RECEIVED if created else _DUPLICATE


def ingest_lane(runtime: Runtime) -> TenantPathLane:
    """The webhook door in front of Litestar (:mod:`core.lanes`); the route below serves
    what the lane leaves."""
    return TenantPathLane(prefix="/webhooks/", route=INGEST_ROUTE,
                          max_body=runtime.settings.webhook_max_bytes,
                          work=partial(_ingest, runtime))


class WebhookIngestController(Controller):
    """``POST /webhooks/{tenant}/{provider}``: the providers' door (no API key)."""

    path = "/webhooks"
    tags = ["webhooks"]

    @post("/{tenant_slug:str}/{provider:str}", status_code=200,
          request_max_body_size=get_settings().webhook_max_bytes)
    async def receive(self, request: Request[Any, Any, Any], provider: str) -> Response[bytes]:
        # runtime and tenant straight from the request: two injected dependencies cost
        # Litestar a task group per request
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]}
        answer = await _ingest(request.app.state.runtime, request.state.tenant, provider,
                               headers, await request.body())
        return Response(answer, media_type=MediaType.JSON)


class WebhookEventController(Controller):
    """The tenant's view of its inbox, with replay."""

    path = "/v1/webhook-events"
    tags = ["tenant: webhooks"]

    @get("/")
    async def list_events(self, tenant_db: AsyncSession, status: str | None = None,
                          provider: str | None = None, created_from: datetime | None = None,
                          created_to: datetime | None = None, page: int = 1,
                          limit: int = 50) -> dict[str, Any]:
        page, limit = page_params(page, limit)
        rows, more = await service.list_events(tenant_db, status=status, provider=provider,
                                               created_from=created_from,
                                               created_to=created_to, page=page, limit=limit)
        return {"data": [service.event_out(r) for r in rows], "page": page, "limit": limit,
                "has_more": more}

    @post("/{event_id:str}/replay", status_code=202)
    async def replay(self, runtime: Runtime, tenant: TenantContext, actor: Actor,
                     event_id: str) -> Response[dict[str, Any]]:
        try:
            parsed = uuid.UUID(event_id)
        except ValueError as exc:
            raise NotFound("webhook event not found") from exc
        events, queued = await service.replay(runtime, tenant, actor, event_ids=[parsed])
        if not events:
            raise NotFound("webhook event not found")
        return Response({"event": events[0], "queued": queued}, status_code=202)
