"""Who is calling and on which tenant: the values key authentication and tenant
resolution produce (the API's middleware, :mod:`core.middleware`, makes them); the
per-process caches the lookups behind them use live in :mod:`core.caches`. No web
framework here: workers import this module too.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import datetime

from core.caches import TtlCache  # noqa: F401  (re-exported: its old home)


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


_working_for: ContextVar[TenantContext | None] = ContextVar("paymesh_tenant", default=None)


def working_for() -> TenantContext | None:
    """The tenant the current request, actor or job works for, where its entry point
    said so (:func:`work_for`); None elsewhere. Only for what may be left to a sweeper
    when unknown (handing the outgoing webhooks a transaction wrote to the workers)."""
    return _working_for.get()


def work_for(tenant: TenantContext | None) -> Token[TenantContext | None]:
    """Say which tenant this task works for (reset with the token when done)."""
    return _working_for.set(tenant)


def done_working(token: Token[TenantContext | None]) -> None:
    _working_for.reset(token)


KeyLookup = Callable[[str], Awaitable[Principal | None]]
TenantLookup = Callable[..., Awaitable[TenantContext | None]]
