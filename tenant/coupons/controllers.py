"""Coupons (T13, SPEC 3a): ``/v1/coupons``, their redemptions and the sync replay."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, Response, get, patch, post
from sqlalchemy.ext.asyncio import AsyncSession

from core.actors import SYNC_COUPON_DISCOUNT
from core.audit import Actor
from core.errors import Conflict
from core.http import Page, actor_of, page_params, tenant_of
from core.idempotency import run_idempotent
from core.runtime import Runtime
from tenant.coupons import service, sync
from tenant.coupons.schemas import CouponIn, CouponOut, CouponPatch, RedemptionOut
from tenant.coupons.states import SyncStatus


class CouponController(Controller):
    path = "/v1/coupons"
    tags = ["tenant: coupons"]

    @get("/")
    async def list_coupons(self, tenant_db: AsyncSession, page: int = 1, limit: int = 50,
                           active: bool | None = None,
                           code: str | None = None) -> Page[CouponOut]:
        """``code``: the coupon with this code (case-insensitive)."""
        page, limit = page_params(page, limit)
        data, more = await service.list_coupons(tenant_db, page=page, limit=limit,
                                                active=active, code=code)
        return Page(data=data, page=page, limit=limit, has_more=more)

    @post("/", status_code=201)
    async def create(self, request: Request[Any, Any, Any], tenant_db: AsyncSession,
                     actor: Actor, data: CouponIn) -> Response[CouponOut]:
        """422 (with ``param``) for a body the contract refuses; 409 ``coupon_code_taken``
        for a code in use (codes are case-insensitive)."""
        async def work() -> tuple[int, CouponOut]:
            return 201, await service.create(tenant_db, data, actor)

        return await run_idempotent(request, tenant_db, work)

    @get("/{coupon_id:uuid}")
    async def read(self, tenant_db: AsyncSession, coupon_id: uuid.UUID) -> CouponOut:
        return await service.get(tenant_db, coupon_id)

    @patch("/{coupon_id:uuid}")
    async def change(self, tenant_db: AsyncSession, actor: Actor, coupon_id: uuid.UUID,
                     data: CouponPatch) -> CouponOut:
        """``active``, ``expires_at``, ``max_redemptions`` (409 ``max_below_redeemed``
        below ``times_redeemed``)."""
        return await service.update(tenant_db, coupon_id, data, actor)

    @get("/{coupon_id:uuid}/redemptions")
    async def redemptions(self, tenant_db: AsyncSession, coupon_id: uuid.UUID,
                          page: int = 1, limit: int = 50, status: str | None = None,
                          sync_status: str | None = None) -> Page[RedemptionOut]:
        page, limit = page_params(page, limit)
        data, more = await service.list_redemptions(tenant_db, coupon_id, page=page,
                                                    limit=limit, status=status,
                                                    sync_status=sync_status)
        return Page(data=data, page=page, limit=limit, has_more=more)

    @post("/{coupon_id:uuid}/redemptions/{order_id:uuid}/resync", status_code=200)
    async def resync(self, request: Request[Any, Any, Any], coupon_id: uuid.UUID,
                     order_id: uuid.UUID) -> RedemptionOut:
        """Replay a ``failed`` provider-discount sync (fresh tries; never lowers the
        provider's cap twice). A ``pending`` one is sent again, a ``done`` one is answered
        as it is; ``not_linked`` (nothing to sync) is a 409 ``sync_not_linked``."""
        runtime: Runtime = request.app.state.runtime
        tenant = tenant_of(request)
        async with runtime.tenant_session(tenant.db_url) as session:
            row = await service.get_redemption(session, coupon_id, order_id)
            status = row.sync_status
        if status == SyncStatus.NOT_LINKED:
            raise Conflict("this redemption has nothing to sync (its coupon links no "
                           "provider discount, the order is not paid, or it was paid "
                           "through the discount's own provider)", code="sync_not_linked",
                           param="order_id")
        if status == SyncStatus.FAILED:
            await sync.replay(runtime, tenant, actor_of(request), coupon_id=coupon_id,
                              order_ids=[order_id])
        elif status == SyncStatus.PENDING:
            await runtime.enqueue(SYNC_COUPON_DISCOUNT, tenant.slug, str(order_id))
        async with runtime.tenant_session(tenant.db_url) as session:
            return service.redemption_out(
                await service.get_redemption(session, coupon_id, order_id))
