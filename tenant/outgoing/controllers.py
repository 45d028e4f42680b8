"""Outgoing webhook endpoints and their delivery log (SPEC 3a, T24)."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, Response, delete, get, patch, post
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.http import Page, page_params
from core.idempotency import run_idempotent
from core.runtime import Runtime
from core.tenancy import TenantContext
from tenant.outgoing import service
from tenant.outgoing.schemas import DeliveryOut, EndpointIn, EndpointOut, EndpointPatch, RotateIn


class WebhookEndpointController(Controller):
    path = "/v1/webhook-endpoints"
    tags = ["tenant: outgoing webhooks"]

    @post("/", status_code=201)
    async def create(self, request: Request[Any, Any, Any], tenant_db: AsyncSession,
                     runtime: Runtime, tenant: TenantContext, actor: Actor,
                     data: EndpointIn) -> Response[EndpointOut]:
        """The answer is the only time the signing ``secret`` is shown (and on rotation)."""
        async def work() -> tuple[int, EndpointOut]:
            return 201, await service.create(runtime, tenant_db, tenant, data, actor)

        return await run_idempotent(request, tenant_db, work)

    @get("/")
    async def list_endpoints(self, tenant_db: AsyncSession, page: int = 1,
                             limit: int = 50) -> Page[EndpointOut]:
        page, limit = page_params(page, limit)
        data, more = await service.list_endpoints(tenant_db, page=page, limit=limit)
        return Page(data=data, page=page, limit=limit, has_more=more)

    @get("/{endpoint_id:uuid}")
    async def read(self, tenant_db: AsyncSession, endpoint_id: uuid.UUID) -> EndpointOut:
        return await service.get(tenant_db, endpoint_id)

    @patch("/{endpoint_id:uuid}")
    async def change(self, tenant_db: AsyncSession, runtime: Runtime, actor: Actor,
                     endpoint_id: uuid.UUID, data: EndpointPatch) -> EndpointOut:
        return await service.update(runtime, tenant_db, endpoint_id, data, actor)

    @delete("/{endpoint_id:uuid}", status_code=204)
    async def remove(self, tenant_db: AsyncSession, actor: Actor,
                     endpoint_id: uuid.UUID) -> None:
        await service.delete(tenant_db, endpoint_id, actor)

    @post("/{endpoint_id:uuid}/rotate-secret", status_code=200)
    async def rotate(self, tenant_db: AsyncSession, runtime: Runtime, tenant: TenantContext,
                     actor: Actor, endpoint_id: uuid.UUID,
                     data: RotateIn | None = None) -> EndpointOut:
        return await service.rotate(runtime, tenant_db, tenant, endpoint_id,
                                    data or RotateIn(), actor)

    @get("/{endpoint_id:uuid}/deliveries")
    async def deliveries(self, tenant_db: AsyncSession, endpoint_id: uuid.UUID, page: int = 1,
                         limit: int = 50, status: str | None = None) -> Page[DeliveryOut]:
        page, limit = page_params(page, limit)
        data, more = await service.deliveries(tenant_db, endpoint_id, page=page, limit=limit,
                                              status=status)
        return Page(data=data, page=page, limit=limit, has_more=more)


class WebhookDeliveryController(Controller):
    path = "/v1/webhook-deliveries"
    tags = ["tenant: outgoing webhooks"]

    @post("/{delivery_id:uuid}/redeliver", status_code=202)
    async def redeliver(self, tenant_db: AsyncSession, actor: Actor,
                        delivery_id: uuid.UUID) -> DeliveryOut:
        """A new attempt of the same event (same ``webhook-id``), sent now."""
        return await service.redeliver(tenant_db, delivery_id, actor)
