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
from tenant.payments import service
from tenant.payments.checkout import start_checkout
from tenant.payments.schemas import CheckoutIn, CheckoutOut, MarkPaidIn, PaymentOut


class PaymentController(Controller):
    path = "/v1/payments"
    tags = ["tenant: payments"]

    @get("/")
    async def list_payments(self, tenant_db: AsyncSession, page: int = 1, limit: int = 50,
                            order_id: uuid.UUID | None = None, provider: str | None = None,
                            status: str | None = None, created_from: datetime | None = None,
                            created_to: datetime | None = None) -> Page[PaymentOut]:
        page, limit = page_params(page, limit)
        data, more = await service.list_payments(
            tenant_db, page=page, limit=limit, order_id=order_id, provider=provider,
            status=status, created_from=created_from, created_to=created_to)
        return Page(data=data, page=page, limit=limit, has_more=more)

    @get("/{payment_id:uuid}")
    async def read(self, tenant_db: AsyncSession, payment_id: uuid.UUID) -> PaymentOut:
        return await service.get_payment(tenant_db, payment_id)


class OrderPaymentController(Controller):
    """The money-moving order endpoints (checkout, cash), beside the order controller."""

    path = "/v1/orders"
    tags = ["tenant: orders"]

    @post("/{order_id:uuid}/checkout", status_code=201)
    async def checkout(self, request: Request[Any, Any, Any], order_id: uuid.UUID,
                       data: CheckoutIn | None = None) -> Response[CheckoutOut]:
        # A hot path: no dependencies (see ``OrderController.create``).
        body = data or CheckoutIn()
        runtime: Runtime = request.app.state.runtime
        tenant, actor = tenant_of(request), actor_of(request)
        async with runtime.tenants.transaction(tenant.db_url) as db:
            async def work() -> tuple[int, Any]:
                result = await start_checkout(runtime, db, tenant, order_id, actor=actor,
                                              provider=body.provider,
                                              return_url=body.return_url,
                                              cancel_url=body.cancel_url)
                return result.outcome()

            return await run_idempotent(request, db, work)

    @post("/{order_id:uuid}/mark-paid", status_code=200)
    async def mark_paid(self, request: Request[Any, Any, Any], tenant_db: AsyncSession,
                        actor: Actor, order_id: uuid.UUID,
                        data: MarkPaidIn | None = None) -> Response[PaymentOut]:
        async def work() -> tuple[int, PaymentOut]:
            return 200, await service.mark_paid_cash(tenant_db, order_id, data or MarkPaidIn(),
                                                     actor=actor)

        return await run_idempotent(request, tenant_db, work)
