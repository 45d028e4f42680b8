"""Refunds (T11): full and partial, by provider API or by hand (SPEC 3a)."""
from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.http import Page, actor_of, page_params, tenant_of
from core.idempotency import REPLAYED_HEADER, run_idempotent
from core.runtime import Runtime
from tenant.refunds import issue, service
from tenant.refunds.schemas import RefundIn, RefundOut


class RefundController(Controller):
    path = "/v1/refunds"
    tags = ["tenant: refunds"]

    @get("/")
    async def list_refunds(self, tenant_db: AsyncSession, page: int = 1, limit: int = 50,
                           order_id: uuid.UUID | None = None,
                           status: str | None = None) -> Page[RefundOut]:
        page, limit = page_params(page, limit)
        data, more = await service.list_refunds(tenant_db, page=page, limit=limit,
                                                order_id=order_id, status=status)
        return Page(data=data, page=page, limit=limit, has_more=more)

    @get("/{refund_id:uuid}")
    async def read(self, tenant_db: AsyncSession, refund_id: uuid.UUID) -> RefundOut:
        return await service.get_refund(tenant_db, refund_id)

    @post("/{refund_id:uuid}/mark-refunded", status_code=200)
    async def mark_refunded(self, request: Request[Any, Any, Any], tenant_db: AsyncSession,
                            actor: Actor, refund_id: uuid.UUID) -> Response[RefundOut]:
        async def work() -> tuple[int, RefundOut]:
            return 200, await issue.mark_refunded(tenant_db, refund_id, actor=actor)

        return await run_idempotent(request, tenant_db, work)


class OrderRefundController(Controller):
    """``POST /v1/orders/{id}/refunds``, beside the order controller."""

    path = "/v1/orders"
    tags = ["tenant: refunds"]

    @post("/{order_id:uuid}/refunds", status_code=201)
    async def create(self, request: Request[Any, Any, Any], order_id: uuid.UUID,
                     data: RefundIn | None = None) -> Response[RefundOut]:
        """The refund row is reserved (and the ``Idempotency-Key`` remembered) in one
        committed transaction; the provider is called after it and its answer recorded
        in another (:mod:`tenant.refunds.issue`). A replay answers the refund as it is
        now, and sends a refund its provider never answered again."""
        body = data or RefundIn()
        runtime: Runtime = request.app.state.runtime
        tenant, actor = tenant_of(request), actor_of(request)
        async with runtime.tenant_session(tenant.db_url) as db:
            async def work() -> tuple[int, RefundOut]:
                return 201, await issue.reserve(runtime, db, tenant, order_id, body,
                                                actor=actor)

            reserved = await run_idempotent(request, db, work)
        if reserved.status_code != 201:
            return reserved
        refund_id = uuid.UUID(msgspec.json.decode(reserved.content)["id"])
        out = await issue.send(runtime, tenant, refund_id, actor=actor)
        replayed = reserved.headers.get(REPLAYED_HEADER)
        headers = {REPLAYED_HEADER: replayed} if replayed else {}
        return Response(content=out, status_code=201, headers=headers)
