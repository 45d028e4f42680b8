from __future__ import annotations

import inspect
from typing import Any

from litestar import Controller, Request, delete, get, post, put
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.errors import ValidationError
from core.runtime import Runtime
from core.tenancy import TenantContext
from tenant.provider_configs import service
from tenant.provider_configs.schemas import (
    CredentialTestOut,
    ProviderConfigIn,
    ProviderConfigOut,
    SelectedProvider,
)


class ProviderConfigController(Controller):
    path = "/v1/providers"
    tags = ["tenant: providers"]

    # The two listings take runtime and tenant from the request: they usually answer
    # without the tenant's database, and two injected dependencies cost Litestar a task
    # group per request.
    @get("/")
    async def list_configs(self, request: Request[Any, Any, Any]) -> dict:
        return {"data": await service.listed(request.app.state.runtime, request.state.tenant)}

    @get("/available")
    async def available(self, request: Request[Any, Any, Any],
                        currency: str | None = None) -> dict:
        if not currency:
            raise ValidationError("currency is required", param="currency")
        return {"data": await service.available(request.app.state.runtime,
                                                request.state.tenant, currency)}

    @get("/for-currency/{currency:str}")
    async def for_currency(self, runtime: Runtime, tenant_db: AsyncSession,
                           tenant: TenantContext, currency: str, amount: int | None = None,
                           provider: str | None = None) -> SelectedProvider:
        found = await service.candidates(runtime, tenant_db, tenant, currency, amount, provider)
        if not found:
            from core.errors import UnprocessableError

            raise UnprocessableError(
                f"no configured provider can take {currency.upper()}"
                + (f" {amount}" if amount is not None else ""),
                code="no_provider_available", param="currency",
            )
        best = found[0]
        public = service.build(runtime, tenant, best.row, best.entry).public_config()
        return SelectedProvider(
            provider=best.row.provider_code, name=best.entry.name, currency=currency.upper(),
            amount=amount, fee=best.fee, public_config=public,
            fallbacks=[c.row.provider_code for c in found[1:]],
        )

    @put("/{code:str}", summary="Create or update the tenant's configuration of a provider",
         description=inspect.cleandoc(ProviderConfigIn.__doc__ or ""))
    async def put_config(self, runtime: Runtime, tenant_db: AsyncSession,
                         tenant: TenantContext, actor: Actor, code: str,
                         data: ProviderConfigIn) -> ProviderConfigOut:
        row = await service.put_config(runtime, tenant_db, tenant, code, data, actor)
        return service.to_out(row, await service.catalog_entry(runtime, code))

    @delete("/{code:str}", status_code=204)
    async def delete_config(self, runtime: Runtime, tenant_db: AsyncSession,
                            tenant: TenantContext, actor: Actor, code: str) -> None:
        await service.delete_config(runtime, tenant_db, tenant, code, actor)

    @post("/{code:str}/test", status_code=200)
    async def test_config(self, runtime: Runtime, tenant_db: AsyncSession,
                          tenant: TenantContext, actor: Actor, code: str) -> CredentialTestOut:
        row = await service.test_credentials(runtime, tenant_db, tenant, code, actor)
        return CredentialTestOut(provider=code, ok=bool(row.last_test_ok),
                                 message=row.last_test_message or "",
                                 tested_at=row.last_tested_at)  # type: ignore[arg-type]
