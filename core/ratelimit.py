"""Rate limits shared by every API process (Redis), all keyed by :func:`core.clientip.client_ip`.

- :class:`RedisRateLimitConfig`: Litestar's ``RateLimitConfig`` over its ``RedisStore``
  (the pay pages, the sandbox gateway's pages), failing open if Redis is down and
  answering 429 with ``Retry-After``.
- :class:`SharedCounter`: a fixed-window counter for the paths Litestar does not run
  (the webhook lane in :mod:`core.lanes`) or runs before routing (failed API-key
  authentication in :mod:`core.middleware`). Each process counts locally and adds its
  count to the Redis counter of the window in batches, so a busy key costs one Redis
  round trip per ``batch`` requests, and a small limit is exact.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from litestar import Litestar, Request
from litestar.middleware.rate_limit import CacheObject, RateLimitConfig, RateLimitMiddleware
from litestar.stores.base import Store
from litestar.stores.redis import RedisStore
from redis.exceptions import RedisError

from core.clientip import client_ip
from core.errors import RateLimited
from core.redis import get_redis

log = logging.getLogger(__name__)


def client_of(request: Request[Any, Any, Any]) -> str:
    """The rate-limit identity of a request: its client address."""
    return client_ip(request.scope) or "unknown"


class FailOpenRateLimit(RateLimitMiddleware):
    """Litestar's rate limiting, open when Redis is away, with ``Retry-After`` on a 429."""

    async def retrieve_cached_history(self, key: str, store: Store) -> CacheObject:
        try:
            return await super().retrieve_cached_history(key, store)
        except (RedisError, OSError) as exc:
            log.warning("rate limit store unavailable (%s); not limiting", type(exc).__name__)
            return CacheObject(history=[], reset=int(time.time()) + 60)

    async def set_cached_history(self, key: str, cache_object: CacheObject,
                                 store: Store) -> None:
        try:
            await super().set_cached_history(key, cache_object, store)
        except (RedisError, OSError):
            pass

    def create_response_headers(self, cache_object: CacheObject) -> dict[str, str]:
        headers = super().create_response_headers(cache_object)
        if len(cache_object.history) >= self.max_requests:
            headers["Retry-After"] = str(max(1, cache_object.reset - int(time.time())))
        return headers


@dataclass
class RedisRateLimitConfig(RateLimitConfig):
    """Litestar's rate limiting with its ``RedisStore`` on Paymesh's Redis, shared by
    every API process behind the load balancer."""

    namespace: str = "paymesh:ratelimit"

    def get_store_from_app(self, app: Litestar) -> Store:
        try:
            return RedisStore(redis=get_redis(), namespace=self.namespace)
        except RuntimeError:  # no Redis configured: per-process memory
            return app.stores.get(self.namespace)


def rate_limited(retry_after: int, what: str) -> RateLimited:
    """Our 429 error object; ``headers`` carries ``Retry-After``."""
    error = RateLimited(f"too many {what}; retry in {retry_after} s")
    error.headers = {"Retry-After": str(retry_after)}  # type: ignore[attr-defined]
    return error


class SharedCounter:
    """At most ``limit`` hits per key per ``window`` seconds, across processes.

    A key's window opens with its first hit (as Litestar's own limiter does) and lasts
    ``window`` seconds, the same in every process (the Redis counter's TTL). ``limit`` 0
    means no limit (nothing is counted). Redis trouble fails open.
    """

    def __init__(self, namespace: str, limit: int, window: int = 60) -> None:
        self.namespace = namespace
        self.limit = limit
        self.window = window
        #: Requests counted here before they are added to Redis (1: every request).
        self.batch = max(1, limit // 100)
        #: key → [total known from Redis, counted here and not yet added, window end]
        self._counts: dict[str, list[float]] = {}

    def _state(self, key: str, now: float) -> list[float]:
        state = self._counts.get(key)
        if state is None or now >= state[2]:
            if len(self._counts) > 10_000:  # forget spent windows
                self._counts = {k: v for k, v in self._counts.items() if v[2] > now}
            state = self._counts[key] = [0, 0, now + self.window]
        return state

    @staticmethod
    def _retry_after(state: list[float], now: float) -> int:
        return max(1, math.ceil(state[2] - now))

    def blocked(self, key: str) -> int | None:
        """Seconds to wait if ``key`` is over its limit as far as this process knows
        (no Redis call)."""
        if not self.limit:
            return None
        now = time.time()
        state = self._state(key, now)
        return self._retry_after(state, now) if state[0] + state[1] >= self.limit else None

    async def hit(self, key: str) -> int | None:
        """Count one hit; seconds to wait if that hit is over the limit, else ``None``."""
        if not self.limit:
            return None
        now = time.time()
        state = self._state(key, now)
        if state[0] >= self.limit:  # the window is spent: refuse without counting
            return self._retry_after(state, now)
        state[1] += 1
        if state[1] >= self.batch or state[0] + state[1] > self.limit:
            await self._flush(key, state, now)
        return self._retry_after(state, now) if state[0] + state[1] > self.limit else None

    async def _flush(self, key: str, state: list[float], now: float) -> None:
        pending, state[1] = int(state[1]), 0
        name = f"{self.namespace}:{key}"
        try:
            async with get_redis().pipeline(transaction=True) as pipe:
                pipe.set(name, 0, ex=self.window, nx=True)  # opens the shared window
                pipe.incrby(name, pending)
                pipe.pttl(name)
                _, total, ttl_ms = await pipe.execute()
            state[0] = max(state[0], int(total))
            if ttl_ms and ttl_ms > 0:
                state[2] = now + ttl_ms / 1000
        except (RedisError, OSError, RuntimeError) as exc:  # fail open
            log.warning("rate limit counter unavailable (%s)", type(exc).__name__)
