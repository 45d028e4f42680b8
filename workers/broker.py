"""The Dramatiq broker: Redis, with the AsyncIO middleware for ``async def`` actors.

Imported first by :mod:`workers.actors` so every actor binds to this broker.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import dramatiq
from dramatiq.brokers.redis import DEFAULT_DEAD_MESSAGE_TTL, RedisBroker
from dramatiq.brokers.redis import _scripts as _broker_scripts
from dramatiq.common import current_millis
from dramatiq.middleware.asyncio import AsyncIO

from core.redis import get_redis
from core.settings import get_settings

log = logging.getLogger(__name__)
NAMESPACE = "paymesh"
QUEUE = "default"
HEARTBEAT_TIMEOUT_MS = 30_000
#: The broker's own enqueue script: messages written here are read by RedisBroker workers.
_DISPATCH = _broker_scripts["dispatch"]


def make_broker(url: str) -> RedisBroker:
    broker = RedisBroker(url=url, namespace=NAMESPACE, socket_connect_timeout=2,
                         socket_timeout=10, heartbeat_timeout=HEARTBEAT_TIMEOUT_MS)
    broker.add_middleware(AsyncIO())
    return broker


broker = make_broker(get_settings().redis_url or "redis://127.0.0.1:6379/0")
dramatiq.set_broker(broker)


class Enqueuer:
    """How API processes hand work to actors by name, without importing the actors.

    It runs the broker's own Lua dispatch script (the wire format stays Dramatiq's) on the
    process's async Redis client, so a request never waits on a thread. Never raises: when
    Redis is unreachable it answers False and stops trying for a couple of seconds, so
    requests stay fast; the sweeper enqueues what was left.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.broker_id = str(uuid.uuid4())
        self._scripts: dict[int, Any] = {}
        self._down_until = 0.0

    def _dispatch(self) -> Any:
        client = get_redis(self.url)
        script = self._scripts.get(id(client))
        if script is None:
            script = client.register_script(_DISPATCH)
            self._scripts[id(client)] = script
        return script

    async def __call__(self, actor: str, *args: object) -> bool:
        if time.monotonic() < self._down_until:
            return False
        redis_id = str(uuid.uuid4())
        message = dramatiq.Message(queue_name=QUEUE, actor_name=actor, args=args, kwargs={},
                                   options={"redis_message_id": redis_id})
        try:
            await self._dispatch()(keys=[NAMESPACE], args=[
                "enqueue", current_millis(), QUEUE, self.broker_id, HEARTBEAT_TIMEOUT_MS,
                DEFAULT_DEAD_MESSAGE_TTL, 0, 1000, redis_id, message.encode()])
            return True
        except Exception as exc:  # noqa: BLE001 - the broker being down must not fail a request
            self._down_until = time.monotonic() + 2.0
            log.warning("enqueue of %s failed (%s); left for the sweeper", actor,
                        type(exc).__name__)
            return False
