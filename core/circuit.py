"""A per-tenant, per-provider circuit breaker kept in Redis (shared by all processes).

Closed → (``threshold`` consecutive failures) → open for ``cooldown`` seconds → half-open:
the next call is allowed through; success closes the circuit, failure re-opens it.

Checkouts ask on every attempt, and almost always the answer is "closed, nothing
recorded". A process that saw that remembers it for :data:`RECHECK_SECONDS`: meanwhile it
neither reads the circuit again nor resets it after a success (there is nothing to reset).
A failure recorded here forgets it at once; one recorded by another process is seen
here within :data:`RECHECK_SECONDS`.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis

THRESHOLD = 5
COOLDOWN_SECONDS = 30
#: How long a process trusts having seen a circuit closed with no failures recorded.
RECHECK_SECONDS = 1.0

#: (tenant, provider) → when this process last saw the circuit clean (monotonic).
_clean: dict[tuple[str, str], float] = {}


def _key(tenant: str, provider: str) -> str:
    return f"circuit:{tenant}:{provider}"


def _seen_clean(tenant: str, provider: str) -> bool:
    return time.monotonic() - _clean.get((tenant, provider), -RECHECK_SECONDS) < RECHECK_SECONDS


def _mark_clean(tenant: str, provider: str) -> None:
    if len(_clean) > 10_000:
        _clean.clear()
    _clean[(tenant, provider)] = time.monotonic()


async def is_open(redis: aioredis.Redis, tenant: str, provider: str) -> bool:
    """True while open; False when closed or half-open (cool-down elapsed)."""
    if _seen_clean(tenant, provider):
        return False
    try:
        failures, opened_at = await redis.hmget(_key(tenant, provider), "failures", "opened_at")
    except (aioredis.RedisError, OSError):
        return False  # no Redis: fail open, the provider call itself decides
    if failures is None and opened_at is None:
        _mark_clean(tenant, provider)
    return opened_at is not None and time.time() - float(opened_at) < COOLDOWN_SECONDS


async def record_failure(redis: aioredis.Redis, tenant: str, provider: str) -> None:
    _clean.pop((tenant, provider), None)
    key = _key(tenant, provider)
    try:
        failures = await redis.hincrby(key, "failures", 1)
        if failures >= THRESHOLD:
            await redis.hset(key, "opened_at", str(time.time()))
        await redis.expire(key, 3600)
    except (aioredis.RedisError, OSError):
        pass


async def record_success(redis: aioredis.Redis, tenant: str, provider: str) -> None:
    if _seen_clean(tenant, provider):
        return  # nothing was recorded a moment ago: nothing to reset
    try:
        await redis.delete(_key(tenant, provider))
    except (aioredis.RedisError, OSError):
        return
    _mark_clean(tenant, provider)
