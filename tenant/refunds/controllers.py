from __future__ import annotations

import uuid

from litestar import Controller, get
from sqlalchemy.ext.asyncio import AsyncSession

from core.http import Page, page_params
from tenant.refunds import service
from tenant.refunds.schemas import RefundOut


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
