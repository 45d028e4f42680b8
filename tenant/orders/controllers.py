from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from litestar import Controller, Request, Response, get, post
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.http import Page, actor_of, page_params, tenant_of
from core.idempotency import run_idempotent
from core.runtime import Runtime
from core.tenancy import TenantContext
from tenant.orders import service
from tenant.orders.schemas import CancelIn, OrderIn, OrderOut, TransitionIn


def pay_base(runtime: Runtime, tenant: TenantContext) -> str:
    return f"{runtime.settings.public_url}/pay/{tenant.slug}"


class OrderController(Controller):
    path = "/v1/orders"
    tags = ["tenant: orders"]

    @get("/")
    async def list_orders(self, runtime: Runtime, tenant: TenantContext,
                          tenant_db: AsyncSession, page: int = 1, limit: int = 50,
                          status: str | None = None, payment_status: str | None = None,
                          created_from: datetime | None = None,
                          created_to: datetime | None = None,
                          customer_email: str | None = None,
                          provider: str | None = None) -> Page[OrderOut]:
        """``provider``: only orders with a payment attempt at that provider."""
        page, limit = page_params(page, limit)
        data, more = await service.list_orders(
            tenant_db, pay_base=pay_base(runtime, tenant), page=page, limit=limit,
            status=status, payment_status=payment_status, created_from=created_from,
            created_to=created_to, customer_email=customer_email, provider=provider,
            runtime=runtime, tenant=tenant)
        return Page(data=data, page=page, limit=limit, has_more=more)

    @post("/", status_code=201)
    async def create(self, request: Request[Any, Any, Any], data: OrderIn) -> Response[OrderOut]:
        # A hot path: what the dependencies would provide is read from the request (several
        # dependencies resolve in an anyio task group, a measurable share of this request's
        # CPU), and the transaction is a plain-SQL one (an ORM session only if needed).
        runtime: Runtime = request.app.state.runtime
        tenant, actor = tenant_of(request), actor_of(request)
        async with runtime.tenants.transaction(tenant.db_url) as db:
            async def work() -> tuple[int, OrderOut]:
                return 201, await service.create_order(db, data, actor=actor,
                                                       pay_base=pay_base(runtime, tenant),
                                                       runtime=runtime, tenant=tenant)

            return await run_idempotent(request, db, work)

    @get("/{order_id:uuid}")
    async def read(self, runtime: Runtime, tenant: TenantContext, tenant_db: AsyncSession,
                   order_id: uuid.UUID) -> OrderOut:
        return await service.read_order(tenant_db, order_id, pay_base(runtime, tenant),
                                        runtime=runtime, tenant=tenant)

    @post("/{order_id:uuid}/transition", status_code=200)
    async def transition(self, runtime: Runtime, tenant: TenantContext,
                         tenant_db: AsyncSession, actor: Actor, order_id: uuid.UUID,
                         data: TransitionIn) -> OrderOut:
        return await service.transition(tenant_db, order_id, data.to, actor=actor,
                                        reason=data.reason, pay_base=pay_base(runtime, tenant))

    @post("/{order_id:uuid}/cancel", status_code=200)
    async def cancel(self, runtime: Runtime, tenant: TenantContext, tenant_db: AsyncSession,
                     actor: Actor, order_id: uuid.UUID,
                     data: CancelIn | None = None) -> OrderOut:
        return await service.cancel(tenant_db, order_id, actor=actor,
                                    reason=data.reason if data else None,
                                    pay_base=pay_base(runtime, tenant))
