from __future__ import annotations

import uuid

from litestar import Controller, get
from sqlalchemy.ext.asyncio import AsyncSession

from core.http import Page, page_params
from tenant.disputes import service
from tenant.disputes.schemas import DisputeOut


class DisputeController(Controller):
    path = "/v1/disputes"
    tags = ["tenant: disputes"]

    @get("/")
    async def list_disputes(self, tenant_db: AsyncSession, page: int = 1, limit: int = 50,
                            status: str | None = None,
                            order_id: uuid.UUID | None = None) -> Page[DisputeOut]:
        page, limit = page_params(page, limit)
        data, more = await service.list_disputes(tenant_db, page=page, limit=limit,
                                                 order_id=order_id, status=status)
        return Page(data=data, page=page, limit=limit, has_more=more)

    @get("/{dispute_id:uuid}")
    async def read(self, tenant_db: AsyncSession, dispute_id: uuid.UUID) -> DisputeOut:
        return await service.get_dispute(tenant_db, dispute_id)
