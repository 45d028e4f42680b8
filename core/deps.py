"""Dependencies every controller may declare by name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.runtime import Runtime
from core.tenancy import TenantContext


def provide_runtime(state: State) -> Runtime:
    return state.runtime  # type: ignore[no-any-return]


async def provide_owner_db(state: State) -> AsyncIterator[AsyncSession]:
    """An owner-database transaction owned by the request (commits after the handler)."""
    async with state.runtime.owner_session() as session:
        yield session


async def provide_tenant_db(request: Request[Any, Any, Any]) -> AsyncIterator[AsyncSession]:
    """A transaction on the caller's tenant database, resolved by the middleware."""
    tenant: TenantContext = request.state.tenant
    async with request.app.state.runtime.tenant_session(tenant.db_url) as session:
        yield session


def provide_tenant(request: Request[Any, Any, Any]) -> TenantContext:
    return request.state.tenant  # type: ignore[no-any-return]


def provide_actor(request: Request[Any, Any, Any]) -> Actor:
    return request.state.get("actor") or Actor(kind="public")


DEPENDENCIES = {
    "runtime": Provide(provide_runtime, sync_to_thread=False),
    "owner_db": Provide(provide_owner_db),
    "tenant_db": Provide(provide_tenant_db),
    "tenant": Provide(provide_tenant, sync_to_thread=False),
    "actor": Provide(provide_actor, sync_to_thread=False),
}
