"""Who is calling and on which tenant: key authentication and tenant resolution.

The middleware here runs before routing to any tenant handler. It needs two lookups the
owner package provides (keys by hash, tenants by slug); the composition root hands them
in, so ``core`` does not import ``owner``.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from litestar.datastructures import State
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from core.audit import Actor
from core.errors import AuthenticationError, NotFound, PermissionDenied

OWNER_PREFIX = "/v1/owner"
TENANT_PREFIX = "/v1/"
PATH_TENANT_PREFIXES = ("/pay/", "/webhooks/")


@dataclass(frozen=True)
class TenantContext:
    id: uuid.UUID
    slug: str
    name: str
    status: str
    default_currency: str
    db_url: str
    master_key_id: str
    wrapped_data_key: bytes
    #: When the owner row last changed (tells a cached copy from a newer one).
    updated_at: datetime | None = None

    @property
    def is_suspended(self) -> bool:
        return self.status != "active"


@dataclass(frozen=True)
class Principal:
    key_id: uuid.UUID
    kind: str  # owner | tenant
    tenant_id: uuid.UUID | None


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


KeyLookup = Callable[[str], Awaitable[Principal | None]]
TenantLookup = Callable[..., Awaitable[TenantContext | None]]


class TtlCache:
    """A tiny per-process cache; entries are invalidated on local writes and expire."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._data: dict[object, tuple[float, object]] = {}
        self._loading: dict[tuple[int, object], asyncio.Future[Any]] = {}

    async def get_or_load(self, key: object, load: Callable[[], Awaitable[Any]]) -> Any:
        """The cached value, or one load shared by every concurrent miss on ``key``: when
        an entry expires under load, one query refills it instead of one per request."""
        hit = self.get(key)
        if hit is not None:
            return hit
        flight = (id(asyncio.get_running_loop()), key)
        future = self._loading.get(flight)
        if future is None:
            future = self._loading[flight] = asyncio.ensure_future(self._fill(key, load))
            future.add_done_callback(lambda _: self._loading.pop(flight, None))
        return await asyncio.shield(future)

    async def _fill(self, key: object, load: Callable[[], Awaitable[Any]]) -> Any:
        value = await load()
        self.put(key, value)
        return value

    def get(self, key: object) -> object | None:
        hit = self._data.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: object, value: object) -> None:
        if len(self._data) > 10_000:
            self._data.clear()
        self._data[key] = (time.monotonic() + self.ttl, value)

    def pop(self, key: object) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def actor_from_scope(scope: Scope, principal: Principal | None) -> Actor:
    client = scope.get("client")
    return Actor(
        key_id=principal.key_id if principal else None,
        kind=principal.kind if principal else "public",
        ip=client[0] if client else None,
        user_agent=_header(scope, b"user-agent"),
    )


class TenancyMiddleware(ASGIMiddleware):
    """Authenticate the key and resolve the tenant; store both in ``scope["state"]``.

    - ``/v1/owner/…``: owner key required.
    - ``/v1/…``: a tenant key acts on its own tenant; an owner key names one with the
      ``Paymesh-Tenant`` header. A tenant key naming another tenant gets 404.
    - ``/pay/{tenant}/…`` and ``/webhooks/{tenant}/…``: tenant from the path, no key.
    Unknown tenant → 404; suspended tenant → 403. No other tenant's database is touched.
    """

    def __init__(self, keys: KeyLookup, tenants: TenantLookup) -> None:
        self.keys = keys
        self.tenants = tenants

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        path: str = scope["path"]
        state = State(scope.setdefault("state", {}))
        if path.startswith(PATH_TENANT_PREFIXES):
            slug = path.split("/", 3)[2] if path.count("/") >= 2 else ""
            state.tenant = await self._tenant(slug=slug)
            state.principal = None
            state.actor = actor_from_scope(scope, None)
        elif path.startswith(TENANT_PREFIX):
            principal = await self._principal(scope)
            state.principal = principal
            state.actor = actor_from_scope(scope, principal)
            if path == OWNER_PREFIX or path.startswith(OWNER_PREFIX + "/"):
                if principal.kind != "owner":
                    raise PermissionDenied("this endpoint needs an owner key")
            else:
                state.tenant = await self._tenant_for(scope, principal)
        await next_app(scope, receive, send)

    async def _principal(self, scope: Scope) -> Principal:
        header = _header(scope, b"authorization") or ""
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'")
        principal = await self.keys(raw.strip())
        if principal is None:
            raise AuthenticationError("invalid or revoked API key")
        return principal

    async def _tenant_for(self, scope: Scope, principal: Principal) -> TenantContext:
        named = _header(scope, b"paymesh-tenant")
        if principal.kind == "owner":
            if not named:
                raise NotFound("owner keys must name a tenant with the Paymesh-Tenant header")
            return await self._tenant(slug=named)
        tenant = await self._tenant(tenant_id=principal.tenant_id)
        if named and named != tenant.slug:
            raise NotFound(f"tenant '{named}' not found")
        return tenant

    async def _tenant(self, **lookup: object) -> TenantContext:
        tenant = await self.tenants(**lookup)
        if tenant is None:
            raise NotFound("tenant not found")
        if tenant.is_suspended:
            raise PermissionDenied("tenant is suspended", code="tenant_suspended")
        return tenant
