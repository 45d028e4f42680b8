from __future__ import annotations

import uuid

from litestar import Controller, get
from sqlalchemy.ext.asyncio import AsyncSession

from core.http import Page, page_params
from tenant.entitlements import service
from tenant.entitlements.schemas import EntitlementOut


class EntitlementController(Controller):
    path = "/v1/entitlements"
    tags = ["tenant: entitlements"]

    @get("/")
    async def list_entitlements(self, tenant_db: AsyncSession, page: int = 1, limit: int = 50,
                                order_id: uuid.UUID | None = None,
                                customer_email: str | None = None,
                                status: str | None = None) -> Page[EntitlementOut]:
        page, limit = page_params(page, limit)
        data, more = await service.list_entitlements(
            tenant_db, page=page, limit=limit, order_id=order_id,
            customer_email=customer_email, status=status)
        return Page(data=data, page=page, limit=limit, has_more=more)
