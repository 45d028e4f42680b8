from __future__ import annotations

from litestar import Controller, get, patch, post, put
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.errors import ValidationError
from owner.catalog import service
from owner.catalog.schemas import (
    CurrencySupport,
    CurrencySupportIn,
    ProviderIn,
    ProviderOut,
    ProviderPatch,
)

STATUSES = ("active", "inactive", "deprecated", "beta")


class CatalogController(Controller):
    path = "/v1/owner/providers"
    tags = ["owner: catalog"]

    @get("/")
    async def list_providers(self, owner_db: AsyncSession, status: str | None = None) -> dict:
        if status is not None and status not in STATUSES:
            raise ValidationError(f"status must be one of {STATUSES}", param="status")
        rows = await service.list_providers(owner_db, status)
        return {"data": [service.to_out(p) for p in rows]}

    @post("/")
    async def create_provider(self, owner_db: AsyncSession, actor: Actor,
                              data: ProviderIn) -> ProviderOut:
        return service.to_out(await service.create(owner_db, data, actor))

    @get("/{code:str}")
    async def get_provider(self, owner_db: AsyncSession, code: str) -> ProviderOut:
        return service.to_out(await service.get(owner_db, code))

    @patch("/{code:str}")
    async def update_provider(self, owner_db: AsyncSession, actor: Actor, code: str,
                              data: ProviderPatch) -> ProviderOut:
        return service.to_out(await service.update(owner_db, code, data, actor))

    @put("/{code:str}/currencies/{currency:str}")
    async def put_currency(self, owner_db: AsyncSession, actor: Actor, code: str,
                           currency: str, data: CurrencySupportIn) -> CurrencySupport:
        row = await service.put_currency(owner_db, code, currency, data, actor)
        return service.currency_out(row)
