"""Who is calling and on which tenant: the values key authentication and tenant
resolution produce (the API's middleware, :mod:`core.middleware`, makes them), and the
small per-process cache the lookups behind them use. No web framework here: workers
import this module too.
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
