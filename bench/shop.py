"""What the payment rows share: a sandbox shop, signed sandbox events, SQL counts, the queue.

A *shop* is a fresh tenant with the sandbox provider configured as its default
(``PUT /v1/providers/sandbox``) and, when asked, one product (``POST /v1/products``). The
sandbox gateway it pays through is served by the API itself at ``PAYMESH_PUBLIC_URL``
(``bench.stack`` sets it to the API's own loopback address), so a checkout makes the API
call itself over HTTP, exactly as in the demo.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from bench import pg
from bench.context import Context, Tenant
from bench.load import Request

SANDBOX_KEY = "sk_sandbox_bench_0001"
PRODUCT_PRICE = 1_999  # USD cents
CUSTOMER = "b@example.com"
#: Dramatiq's namespace and queue in Paymesh (workers.broker)
QUEUE_NAMESPACE = "paymesh"
QUEUE = "default"


@dataclass
class Shop:
    tenant: Tenant
    db_name: str
    db_url: str
    secret_key: str
    product_id: str | None = None
    price: int = PRODUCT_PRICE

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tenant.key}"}

    def order_body(self) -> dict[str, Any]:
        assert self.product_id is not None
        return {"customer_email": CUSTOMER, "currency": "USD",
                "items": [{"product_id": self.product_id, "quantity": 1}]}


async def tenant_db_name(ctx: Context, slug: str) -> str:
    async with pg.connect(ctx.stack.owner_url) as conn:
        name = await conn.fetchval("SELECT db_name FROM tenants WHERE slug = $1", slug)
    if name is None:
        raise RuntimeError(f"tenant {slug} has no database row in the owner DB")
    return str(name)


async def sandbox_shop(ctx: Context, *, product: bool = True,
                       secret_key: str = SANDBOX_KEY) -> Shop:
    """A new tenant with the sandbox provider as default (and one digital product)."""
    tenant, _ = await ctx.create_tenant()
    name = await tenant_db_name(ctx, tenant.slug)
    shop = Shop(tenant=tenant, db_name=name,
                db_url=pg.with_database(ctx.stack.server_url, name), secret_key=secret_key)
    resp = await ctx.api.put("/v1/providers/sandbox", headers=shop.auth,
                             json={"secret_key": secret_key, "is_default": True})
    if resp.status_code != 200:
        raise RuntimeError(f"PUT /v1/providers/sandbox answered {resp.status_code}: "
                           f"{resp.text[:300]}")
    if product:
        resp = await ctx.api.post("/v1/products", headers=shop.auth, json={
            "name": "Bench widget", "kind": "digital", "price": PRODUCT_PRICE,
            "currency": "USD"})
        if resp.status_code != 201:
            raise RuntimeError(f"POST /v1/products answered {resp.status_code}: "
                               f"{resp.text[:300]}")
        shop.product_id = resp.json()["id"]
    return shop


# ----------------------------------------------------------------------------- events


def event_body(event_id: str, type_: str, obj: dict[str, Any], created: int | None = None
               ) -> bytes:
    """A sandbox gateway event envelope, compact JSON (what the gateway sends)."""
    return json.dumps({"id": event_id, "type": type_, "created": created or int(time.time()),
                       "data": {"object": obj}}, separators=(",", ":")).encode()


def signed_request(shop: Shop, body: bytes, timestamp: int | None = None) -> Request:
    """``POST /webhooks/{tenant}/sandbox`` with a fresh ``Sandbox-Signature`` header."""
    from providers.sandbox.signing import SIGNATURE_HEADER, signature_header, webhook_secret_for

    secret = webhook_secret_for(shop.secret_key)
    header = signature_header(secret, timestamp or int(time.time()), body)
    return Request("POST", f"/webhooks/{shop.tenant.slug}/sandbox",
                   {"Content-Type": "application/json", SIGNATURE_HEADER: header}, body)


def noise_requests(shop: Shop, count: int, stem: str) -> list[Request]:
    """``count`` valid signed events of an unknown type (stored as ``ignored``), unique ids."""
    ts = int(time.time())
    run = uuid.uuid4().hex[:10]
    return [signed_request(shop, event_body(f"evt_{stem}_{run}_{i:07d}", "noise.bench",
                                            {"id": "x"}, ts), ts)
            for i in range(count)]


# ----------------------------------------------------------------------------- SQL, queue


async def counts(shop: Shop, sql: str, *args: Any) -> dict[str, float]:
    """One row of numbers from the shop's tenant database."""
    async with pg.connect(shop.db_url) as conn:
        row = await conn.fetchrow(sql, *args)
    return {k: float(v or 0) for k, v in row.items()}


async def db_commits(ctx: Context, shop: Shop) -> dict[str, float]:
    """``pg_stat_database`` commits/rollbacks of the shop's database (≈1 s late)."""
    async with pg.connect(ctx.stack.server_url) as conn:
        row = await conn.fetchrow("SELECT xact_commit, xact_rollback FROM pg_stat_database "
                                  "WHERE datname = $1", shop.db_name)
    return {"xact_commit": float(row["xact_commit"]),
            "xact_rollback": float(row["xact_rollback"])}


def _broker(redis_url: str) -> Any:
    from dramatiq.brokers.redis import RedisBroker

    return RedisBroker(url=redis_url, namespace=QUEUE_NAMESPACE, socket_connect_timeout=2,
                       socket_timeout=10)


async def queue_size(ctx: Context) -> int:
    """Messages waiting in Paymesh's Dramatiq queue (ready + delayed)."""
    def size() -> int:
        broker = _broker(ctx.stack.redis_url)
        try:
            return int(broker.do_qsize(QUEUE))
        finally:
            broker.close()

    return await asyncio.to_thread(size)


async def flush_queue(ctx: Context) -> int:
    """Drop every queued message (what earlier rows left); returns how many there were."""
    def flush() -> int:
        broker = _broker(ctx.stack.redis_url)
        try:
            before = int(broker.do_qsize(QUEUE))
            broker.flush(QUEUE)
            return before
        finally:
            broker.close()

    return await asyncio.to_thread(flush)
