"""A per-tenant, per-provider circuit breaker kept in Redis (shared by all processes).

Closed → (``threshold`` consecutive failures) → open for ``cooldown`` seconds → half-open:
the next call is allowed through; success closes the circuit, failure re-opens it.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis

THRESHOLD = 5
COOLDOWN_SECONDS = 30


def _key(tenant: str, provider: str) -> str:
    return f"circuit:{tenant}:{provider}"


async def is_open(redis: aioredis.Redis, tenant: str, provider: str) -> bool:
    """True while open; False when closed or half-open (cool-down elapsed)."""
    try:
        opened_at = await redis.hget(_key(tenant, provider), "opened_at")
    except (aioredis.RedisError, OSError):
        return False  # no Redis: fail open, the provider call itself decides
    return opened_at is not None and time.time() - float(opened_at) < COOLDOWN_SECONDS


async def record_failure(redis: aioredis.Redis, tenant: str, provider: str) -> None:
    key = _key(tenant, provider)
    try:
        failures = await redis.hincrby(key, "failures", 1)
        if failures >= THRESHOLD:
            await redis.hset(key, "opened_at", str(time.time()))
        await redis.expire(key, 3600)
    except (aioredis.RedisError, OSError):
        pass


async def record_success(redis: aioredis.Redis, tenant: str, provider: str) -> None:
    try:
        await redis.delete(_key(tenant, provider))
    except (aioredis.RedisError, OSError):
        pass
