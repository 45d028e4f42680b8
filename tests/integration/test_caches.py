"""Per-process TTL caches: an expired hot entry is refilled by one load, not one per request."""

from __future__ import annotations

import asyncio

import pytest

from core.tenancy import TtlCache

pytestmark = pytest.mark.asyncio


async def test_concurrent_misses_share_one_load():
    cache = TtlCache(ttl=60)
    loads = 0

    async def load() -> str:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.05)
        return "value"

    results = await asyncio.gather(*[cache.get_or_load("k", load) for _ in range(50)])
    assert results == ["value"] * 50 and loads == 1
    assert await cache.get_or_load("k", load) == "value" and loads == 1  # now a hit


async def test_a_failed_load_is_not_cached_and_the_next_miss_retries():
    cache = TtlCache(ttl=60)
    calls = 0

    async def load() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database away")
        return "value"

    failures = await asyncio.gather(*[cache.get_or_load("k", load) for _ in range(5)],
                                    return_exceptions=True)
    assert all(isinstance(f, ConnectionError) for f in failures) and calls == 1
    assert await cache.get_or_load("k", load) == "value" and calls == 2


async def test_expired_entries_are_loaded_again():
    cache = TtlCache(ttl=0.01)
    values = iter(["old", "new"])

    async def load() -> str:
        return next(values)

    assert await cache.get_or_load("k", load) == "old"
    await asyncio.sleep(0.02)
    assert await cache.get_or_load("k", load) == "new"


async def test_every_cache_is_declared_in_core_caches():
    """No module keeps a cache of its own: a ``TtlCache`` made at module level anywhere but
    in :mod:`core.caches` is one the reset and the invalidation scheme cannot reach."""
    import ast
    from pathlib import Path

    from core import caches

    root = Path(caches.__file__).resolve().parent.parent
    strays = []
    for package in ("core", "providers", "owner", "tenant", "workers"):
        for path in sorted((root / package).rglob("*.py")):
            if path.name == "caches.py" and path.parent.name == "core":
                continue
            for node in ast.parse(path.read_text()).body:
                value = getattr(node, "value", None)
                if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "TtlCache":
                    strays.append(f"{path.relative_to(root)}:{node.lineno}")
    assert strays == []
    assert all(isinstance(c, TtlCache | dict) for c in caches.REGISTRY.values())


async def test_invalidate_and_clear_all_reach_every_cache():
    from core import caches

    for name, cache in caches.REGISTRY.items():
        if isinstance(cache, TtlCache):
            cache.put(("t", name), "value")
        else:
            cache[("t", name)] = 1.0
    caches.invalidate("owner.catalog", ("t", "owner.catalog"))
    assert caches.CATALOG.get(("t", "owner.catalog")) is None
    assert caches.API_KEYS.get(("t", "owner.keys.principals")) == "value"
    caches.clear_all()
    for name, cache in caches.REGISTRY.items():
        hit = cache.get(("t", name))
        assert hit is None, name


async def test_clear_all_drops_a_cached_tenant_that_changed_behind_its_back(
        client, make_tenant):
    """A tenant suspended by a write that invalidated nothing (another process, whose
    change feed is not running here) keeps being served from the cache until
    ``clear_all`` — then the next request sees it suspended."""
    from sqlalchemy import text

    from core import caches
    from core.runtime import get_runtime

    tenant = await make_tenant("cache")
    ttl = caches.TENANT_CONTEXTS.ttl
    caches.TENANT_CONTEXTS.ttl = 3600.0  # no expiry during this test
    try:
        assert (await client.get("/v1/providers", headers=tenant.headers)).status_code == 200
        async with get_runtime().owner_session() as session:
            await session.execute(text("UPDATE tenants SET status = 'suspended' "
                                       "WHERE slug = :slug"), {"slug": tenant.slug})
        assert (await client.get("/v1/providers", headers=tenant.headers)).status_code == 200
        caches.clear_all()
        assert (await client.get("/v1/providers", headers=tenant.headers)).status_code == 403
    finally:
        caches.TENANT_CONTEXTS.ttl = ttl
