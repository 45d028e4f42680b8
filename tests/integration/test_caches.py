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
