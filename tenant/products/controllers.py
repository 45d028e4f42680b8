from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, Response, get, patch, post
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.http import Page, page_params
from core.idempotency import run_idempotent
from tenant.products import service
from tenant.products.schemas import ProductIn, ProductOut, ProductPatch


class ProductController(Controller):
    path = "/v1/products"
    tags = ["tenant: products"]

    @get("/")
    async def list_products(self, tenant_db: AsyncSession, page: int = 1, limit: int = 50,
                            kind: str | None = None, active: bool | None = None,
                            currency: str | None = None) -> Page[ProductOut]:
        page, limit = page_params(page, limit)
        data, more = await service.list_products(tenant_db, page=page, limit=limit, kind=kind,
                                                 active=active, currency=currency)
        return Page(data=data, page=page, limit=limit, has_more=more)

    @post("/", status_code=201)
    async def create(self, request: Request[Any, Any, Any], tenant_db: AsyncSession,
                     actor: Actor, data: ProductIn) -> Response[ProductOut]:
        async def work() -> tuple[int, ProductOut]:
            return 201, await service.create(tenant_db, data, actor)

        return await run_idempotent(request, tenant_db, work)

    @get("/{product_id:uuid}")
    async def read(self, tenant_db: AsyncSession, product_id: uuid.UUID) -> ProductOut:
        return await service.get(tenant_db, product_id)

    @patch("/{product_id:uuid}")
    async def change(self, tenant_db: AsyncSession, actor: Actor, product_id: uuid.UUID,
                     data: ProductPatch) -> ProductOut:
        return await service.update(tenant_db, product_id, data, actor)
