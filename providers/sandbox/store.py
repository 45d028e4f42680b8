"""The sandbox gateway's Redis storage: keys, optimistic transactions, webhook deliveries.

Everything lives under ``sandbox:`` in the shared Redis (``core.redis.get_redis``): the
gateway is an external system and never touches Paymesh's databases. Every
read-modify-write runs under ``WATCH``/``MULTI`` (an idempotent create, the hot one, as one
script: :func:`create_once`), and the webhook a change owes is written in the same
transaction (a *delivery*, plus an entry in a pending set), so no state change can happen
without its event being queued.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError, WatchError

from core.redis import get_redis
from providers.sandbox.models import Delivery, EventKind, GatewayError, Payment, new_id

PREFIX = "sandbox:"
PENDING_DELIVERIES = f"{PREFIX}deliveries:pending"
IDEMPOTENCY_TTL = 24 * 3600
RECORD_TTL = 90 * 24 * 3600
DELIVERY_TTL = 7 * 24 * 3600

T = TypeVar("T")


def key(kind: str, ident: str) -> str:
    return f"{PREFIX}{kind}:{ident}"


def now() -> int:
    return int(time.time())


async def transact(keys: list[str], body: Callable[[Pipeline], Awaitable[T]]) -> T:
    """Run ``body`` under ``WATCH keys``; it reads, calls ``pipe.multi()`` and queues writes."""
    async with get_redis().pipeline(transaction=True) as pipe:
        for _ in range(50):
            try:
                await pipe.watch(*keys)
                result = await body(pipe)
                await pipe.execute()
                return result
            except WatchError:
                continue
    raise GatewayError(409, "conflict", "Too many concurrent changes; retry.")


#: Create a record unless an idempotency key already names one, atomically, in one round
#: trip (the optimistic ``WATCH`` form of :func:`transact` takes three): KEYS = the new
#: record, the idempotency key (or ``""``), one more key to set; ARGV = the record, its id,
#: the key prefix of records, that key's value, the record TTL, the idempotency TTL.
#: Returns the record the key already names, else the new one.
_CREATE_ONCE = """
if KEYS[2] ~= '' then
  local existing = redis.call('GET', KEYS[2])
  if existing then
    local record = redis.call('GET', ARGV[3] .. existing)
    if record then return record end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[5])
redis.call('SET', KEYS[3], ARGV[4], 'EX', ARGV[5])
if KEYS[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[6]) end
return ARGV[1]
"""
_CREATE_ONCE_SHA = hashlib.sha1(_CREATE_ONCE.encode()).hexdigest()


async def create_once(kind: str, record: msgspec.Struct, record_id: str, type_: type[T],
                      idem: str | None, also: tuple[str, str]) -> T:
    """Store ``record`` under ``kind:record_id`` and ``also`` (key, value) — unless the
    idempotency key ``idem`` already names a stored record of ``kind``: that one is
    returned and nothing is written."""
    client = get_redis()
    keys = (key(kind, record_id), idem or "", also[0])
    args = (msgspec.json.encode(record), record_id, key(kind, ""), also[1], RECORD_TTL,
            IDEMPOTENCY_TTL)
    try:
        raw = await client.evalsha(_CREATE_ONCE_SHA, len(keys), *keys, *args)
    except NoScriptError:  # first use since the server started: load it
        raw = await client.eval(_CREATE_ONCE, len(keys), *keys, *args)
    return msgspec.json.decode(raw, type=type_)


async def read(pipe: Pipeline, name: str, type_: type[T]) -> T | None:
    raw = await pipe.get(name)
    return None if raw is None else msgspec.json.decode(raw, type=type_)


async def fetch(name: str, type_: type[T]) -> T | None:
    raw = await get_redis().get(name)
    return None if raw is None else msgspec.json.decode(raw, type=type_)


def write(pipe: Pipeline, name: str, record: msgspec.Struct, ttl: int = RECORD_TTL) -> None:
    pipe.set(name, msgspec.json.encode(record), ex=ttl)


def queue_event(
    pipe: Pipeline, payment: Payment, kind: EventKind, obj: dict[str, Any], secret: str | None
) -> str | None:
    """Queue the webhook for ``kind`` (inside MULTI). No notify_url → nothing to send."""
    if not payment.notify_url or not secret:
        return None
    created = now()
    event = {"id": new_id("evt"), "type": kind.value, "created": created, "data": {"object": obj}}
    delivery = Delivery(
        id=new_id("whd"),
        event_id=event["id"],
        event_type=kind,
        url=payment.notify_url,
        body=msgspec.json.encode(event).decode(),
        secret=secret,
        created=created,
    )
    write(pipe, key("delivery", delivery.id), delivery, DELIVERY_TTL)
    pipe.zadd(PENDING_DELIVERIES, {delivery.id: created})
    return delivery.id


async def load_delivery(delivery_id: str) -> Delivery | None:
    return await fetch(key("delivery", delivery_id), Delivery)


async def save_delivery(delivery: Delivery) -> None:
    async with get_redis().pipeline(transaction=True) as pipe:
        write(pipe, key("delivery", delivery.id), delivery, DELIVERY_TTL)
        if delivery.delivered_at is not None:
            pipe.zrem(PENDING_DELIVERIES, delivery.id)
        await pipe.execute()


async def pending_deliveries(older_than_seconds: int = 60, limit: int = 500) -> list[str]:
    """Deliveries queued before ``older_than_seconds`` ago and not yet delivered.

    A sweeper re-dispatches these when the original ``dispatch`` call was lost.
    """
    cutoff = now() - older_than_seconds
    ids = await get_redis().zrangebyscore(PENDING_DELIVERIES, "-inf", cutoff, start=0, num=limit)
    return [i.decode() for i in ids]
