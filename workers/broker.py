"""The Dramatiq broker: Redis, with the AsyncIO middleware for ``async def`` actors and the
garbage collector back on once a worker process has booted.

Installed by :mod:`workers.actors` (:func:`install_broker`) before it declares any actor,
so every actor binds to this broker; importing this module builds none.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Sequence

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware.asyncio import AsyncIO

from core.actors import QUEUES
from core.db import new_ids
from core.redis import get_redis
from core.settings import get_settings

log = logging.getLogger(__name__)
NAMESPACE = "paymesh"
QUEUE = "default"
HEARTBEAT_TIMEOUT_MS = 30_000
#: The queue's message-id list in Redis (its data hash is ``QUEUE_KEY + ".msgs"``).
QUEUE_KEY = f"{NAMESPACE}:{QUEUE}"


class CollectOnceBooted(dramatiq.Middleware):
    """Turns the garbage collector back on in a worker process that has booted (``paymesh
    worker`` starts them with it off, for their imports), with what exists by then frozen:
    modules, classes and settings live as long as the process, so no collection need scan
    them (see :mod:`core.memory`)."""

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        gc.freeze()
        gc.enable()


def make_broker(url: str) -> RedisBroker:
    broker = RedisBroker(url=url, namespace=NAMESPACE, socket_connect_timeout=2,
                         socket_timeout=10, heartbeat_timeout=HEARTBEAT_TIMEOUT_MS)
    broker.add_middleware(AsyncIO())
    broker.add_middleware(CollectOnceBooted())
    return broker


def install_broker() -> dramatiq.Broker:
    """Make this process's Redis broker Dramatiq's global one (once), before any actor
    binds to it: called by :mod:`workers.actors` only, so importing the API, which only
    enqueues (:class:`Enqueuer`), builds no broker and opens no Redis connection pool."""
    current = dramatiq.broker.global_broker
    if isinstance(current, RedisBroker) and current.namespace == NAMESPACE:
        return current
    broker = make_broker(get_settings().redis_url or "redis://127.0.0.1:6379/0")
    dramatiq.set_broker(broker)
    return broker


class Enqueuer:
    """How API processes hand work to actors by name, without importing the actors.

    It writes what the broker's own ``enqueue`` command writes (Dramatiq's Lua dispatch
    script: the message data into the queue's ``.msgs`` hash, its id onto the queue's
    list), for a whole batch in one MULTI round trip on the process's async Redis client,
    so a request never waits on a thread. Real workers consuming these messages are
    what the worker tests run on. Never raises: when Redis is unreachable it answers
    False and stops trying for a couple of seconds, so requests stay fast; the sweeper
    enqueues what was left.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._down_until = 0.0

    async def __call__(self, actor: str, *args: object) -> bool:
        return await self.many(actor, [args])

    async def many(self, actor: str, calls: Sequence[Sequence[object]]) -> bool:
        """Enqueue one message per argument list, in one Redis round trip."""
        if not calls:
            return True
        if time.monotonic() < self._down_until:
            return False
        ids = iter(new_ids(2 * len(calls)))
        queue = QUEUES.get(actor, QUEUE)
        key = f"{NAMESPACE}:{queue}"
        messages = {}
        for args in calls:
            redis_id = str(next(ids))
            messages[redis_id] = dramatiq.Message(
                queue_name=queue, actor_name=actor, args=tuple(args), kwargs={},
                options={"redis_message_id": redis_id}, message_id=str(next(ids))).encode()
        try:
            async with get_redis(self.url).pipeline(transaction=True) as pipe:
                pipe.hset(f"{key}.msgs", mapping=messages)
                pipe.rpush(key, *messages)
                await pipe.execute()
            return True
        except Exception as exc:  # noqa: BLE001 - the broker being down must not fail a request
            self._down_until = time.monotonic() + 2.0
            log.warning("enqueue of %d × %s failed (%s); left for the sweeper", len(calls),
                        actor, type(exc).__name__)
            return False
