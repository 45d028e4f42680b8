"""Process-wide resources: engines, the tenant engine registry, Redis, HTTP, keyring.

One :class:`Runtime` per process (API, worker, scheduler, CLI), created by the
composition root. Handlers reach it through dependencies; actors through :func:`get_runtime`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from core.crypto import MasterKeyring
from core.db import dispose_autocommit_engines, make_engine
from core.engines import TenantEngineRegistry
from core.settings import Settings, get_settings

if TYPE_CHECKING:
    import httpx

_runtime: Runtime | None = None


class Enqueuer(Protocol):
    async def __call__(self, actor: str, *args: object) -> bool: ...

    async def many(self, actor: str, calls: Sequence[Sequence[object]]) -> bool: ...


@dataclass
class Runtime:
    settings: Settings
    owner_engine: AsyncEngine
    tenants: TenantEngineRegistry
    keyring: MasterKeyring
    extras: dict[str, object] = field(default_factory=dict)
    #: Sends messages to worker actors by name; set by the composition root.
    #: Answers False when the broker is unreachable (callers keep their own record).
    enqueuer: Enqueuer | None = None
    #: ``httpx.AsyncClient | None``, spelled ``Any``: Litestar resolves this dataclass's
    #: annotations at runtime (it is a handler dependency), where httpx is not imported.
    _http: Any = field(default=None, repr=False)

    @property
    def http(self) -> httpx.AsyncClient:
        """The process's outgoing HTTP client (providers, the sandbox gateway), made on
        first use: a worker that only applies webhook events never pays for httpx, its
        TLS context and CA bundle."""
        if self._http is None:
            import httpx

            self._http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))
        return self._http

    @http.setter
    def http(self, client: httpx.AsyncClient) -> None:
        self._http = client

    @classmethod
    def create(cls, settings: Settings | None = None) -> Runtime:
        settings = settings or get_settings()
        if not settings.database_url:
            raise RuntimeError("PAYMESH_DATABASE_URL is not set")
        return cls(
            settings=settings,
            owner_engine=make_engine(settings.database_url, pool_size=settings.owner_pool_size),
            tenants=TenantEngineRegistry(
                max_connections=settings.max_tenant_connections,
                pool_size=settings.tenant_pool_size,
                idle_seconds=settings.tenant_engine_idle_seconds,
            ),
            keyring=MasterKeyring(settings.master_keys),
        )

    @asynccontextmanager
    async def owner_session(self) -> AsyncIterator[AsyncSession]:
        """One owner-database transaction: committed on success, rolled back on error."""
        async with AsyncSession(self.owner_engine, expire_on_commit=False) as session:
            async with session.begin():
                yield session

    async def enqueue(self, actor: str, *args: object) -> bool:
        """Hand work to the workers after commit; never raises."""
        if self.enqueuer is None:
            return False
        return await self.enqueuer(actor, *args)

    async def enqueue_many(self, actor: str, calls: Sequence[Sequence[object]]) -> bool:
        """One message per argument list, in one round trip; never raises."""
        if self.enqueuer is None:
            return False
        return await self.enqueuer.many(actor, calls)

    def tenant_session(self, db_url: str):  # type: ignore[no-untyped-def]
        return self.tenants.session(db_url)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        await self.tenants.dispose_all()
        await self.owner_engine.dispose()
        await dispose_autocommit_engines()


def set_runtime(runtime: Runtime | None) -> None:
    global _runtime
    _runtime = runtime


def get_runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError("the Paymesh runtime is not started")
    return _runtime
