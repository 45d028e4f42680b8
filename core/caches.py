"""Every per-process cache, in one place, with one way to invalidate them.

Each cache is declared here (:data:`REGISTRY`, by name) and used by the one module that
fills it; that module invalidates its own entries on its writes (after the commit), and
:func:`invalidate` / :func:`clear_all` reach any of them by name — the tests' reset, the
owner change feed (:mod:`owner.changes`) and a maintenance command need no import of the
module that owns a cache. Nothing here imports another Paymesh module, so any layer may
use it and no cache needs an import cycle to be invalidated.

The caches (all per process; each is bounded by a TTL, a version check or both):

=============================  ===========================================================
``owner.catalog``              the owner catalog, 5 s (writes clear it)
``owner.tenants.contexts``     tenant contexts by slug or id, incl. misses (5 s, longer
                               while :mod:`owner.changes` watches)
``owner.keys.principals``      authenticated API keys by hash (10 s, idem)
``owner.keys.touched``         when ``last_used_at`` was last written, per key
``provider_configs.data_keys`` tenants' unwrapped data keys, per master key id
``provider_configs.webhook``   provider instances that verify webhooks (10 s)
``provider_configs.views``     checkouts' copies of the configuration rows, by version
``provider_configs.built``     providers built for checkouts, per cached view and entry
``provider_configs.stamped``   when ``last_used_at`` was last written, per provider
``provider_configs.listing``   ``GET /v1/providers`` listings, by Redis stamp (60 s)
``owner.fx.rates``             the stored FX rates (manual and fetched), 5 s (writes clear it)
``owner.fx.fetches``           the rate API's last answer or failure, 30 s: one call per
                               process at a time, and a dead API is not asked again at once
=============================  ===========================================================
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar


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

    def pop(self, key: object, default: object = None) -> None:
        self._data.pop(key, default)

    def clear(self) -> None:
        self._data.clear()


class _Clearable(Protocol):
    def clear(self) -> None: ...

    def pop(self, key: Any, default: Any = None, /) -> Any: ...


C = TypeVar("C", bound=_Clearable)
#: Every cache by name.
REGISTRY: dict[str, _Clearable] = {}


def register(name: str, cache: C) -> C:
    """Declare ``cache`` under ``name`` (once per name) and return it."""
    if name in REGISTRY:
        raise ValueError(f"cache {name!r} is declared twice")
    REGISTRY[name] = cache
    return cache


def invalidate(name: str, key: object) -> None:
    """Drop one entry of the cache ``name``."""
    REGISTRY[name].pop(key, None)


def clear(name: str) -> None:
    """Empty the cache ``name``."""
    REGISTRY[name].clear()


def clear_all() -> None:
    """Empty every cache (tests between runs, a process that lost track of changes)."""
    for cache in REGISTRY.values():
        cache.clear()


CATALOG = register("owner.catalog", TtlCache(ttl=5.0))
TENANT_CONTEXTS = register("owner.tenants.contexts", TtlCache(ttl=5.0))
API_KEYS = register("owner.keys.principals", TtlCache(ttl=10.0))
KEY_TOUCHED: dict[Any, float] = register("owner.keys.touched", {})
DATA_KEYS = register("provider_configs.data_keys", TtlCache(ttl=300.0))
WEBHOOK_PROVIDERS = register("provider_configs.webhook", TtlCache(ttl=10.0))
CONFIG_VIEWS = register("provider_configs.views", TtlCache(ttl=300.0))
CHECKOUT_PROVIDERS = register("provider_configs.built", TtlCache(ttl=300.0))
CONFIG_STAMPED: dict[Any, float] = register("provider_configs.stamped", {})
LISTINGS = register("provider_configs.listing", TtlCache(ttl=60.0))
FX_RATES = register("owner.fx.rates", TtlCache(ttl=5.0))
FX_FETCHES = register("owner.fx.fetches", TtlCache(ttl=30.0))
