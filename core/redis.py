"""The shared async Redis client (caches, locks, rate limits, the sandbox gateway)."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from core.settings import get_settings

_clients: dict[tuple[str, int], aioredis.Redis] = {}


def get_redis(url: str | None = None) -> aioredis.Redis:
    """One client (with its own connection pool) per URL and event loop.

    Connections belong to the loop that opened them, so a process that runs several
    loops (the CLI's ``asyncio.run`` per command, tests) gets a client per loop.
    """
    url = url or get_settings().redis_url
    if not url:
        raise RuntimeError("PAYMESH_REDIS_URL is not set")
    try:
        loop_id = id(asyncio.get_running_loop())
    except RuntimeError:
        loop_id = 0
    client = _clients.get((url, loop_id))
    if client is None:
        client = aioredis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30,
            retry=stale_connection_retry(),
        )
        _clients[(url, loop_id)] = client
    return client


def stale_connection_retry() -> Retry:
    """A command that meets a dead pooled connection (Redis restarted, or dropped its
    clients) is sent again, once, on a fresh one, instead of failing the request.

    Only connection errors: a timeout may mean the command ran, and a retried INCR or
    script would then run twice.
    """
    return Retry(ExponentialBackoff(cap=0.5, base=0.05), 1,
                 supported_errors=(RedisConnectionError,))


async def close_redis() -> None:
    """Close the clients of the running loop (others belong to loops that are gone)."""
    loop_id = id(asyncio.get_running_loop())
    for key in [k for k in _clients if k[1] == loop_id]:
        await _clients.pop(key).aclose()
