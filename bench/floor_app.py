"""The floor of an order + checkout: the round trips the two requests cannot do without.

A bare Litestar app with Paymesh's two paths (``POST /v1/orders``, ``POST
/v1/orders/{id}/checkout``) that keeps only what makes them safe: an ``Idempotency-Key``
claimed under an advisory lock and stored with the result, the order row locked for its
checkout, one gateway call to Redis (as the sandbox gateway makes), everything in one
transaction per request, every statement fused as far as the guarantees allow:

- order: BEGIN; claim the key + read the product + take a number; write the order + its
  line + the stored response; COMMIT (4 round trips);
- checkout: BEGIN; claim the key + lock the order; count its attempts (a snapshot taken
  after the lock); the gateway's Redis script; write the attempt + the stored response;
  COMMIT (5 round trips + 1 Redis call).

No authentication, tenancy, validation beyond the body's shape, audit rows, metrics,
provider selection, ORM or error translation: it is what any implementation of the row on
this stack must at least spend, measured in the same run as the row itself (see
``bench/rows/order_checkout.py``). It answers with the fields the row's wrk script reads.

    PAYMESH_FLOOR_DSN=postgresql://… PAYMESH_FLOOR_REDIS=redis://… \
        python -m bench.floor_app --port 8766
"""

from __future__ import annotations

import os
import secrets
import uuid
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, post

from bench.reference_app import healthz, main

#: The floor's tables (its own scratch database), and its one product (id, price, currency).
SCHEMA = """
CREATE SEQUENCE floor_order_number;
CREATE TABLE floor_products (id uuid PRIMARY KEY, price bigint NOT NULL, currency text NOT NULL);
CREATE TABLE floor_orders (id uuid PRIMARY KEY, number bigint NOT NULL, currency text NOT NULL,
                           total bigint NOT NULL, customer_email text NOT NULL);
CREATE TABLE floor_order_items (id uuid PRIMARY KEY, order_id uuid NOT NULL, product_id uuid,
                                quantity int NOT NULL, amount bigint NOT NULL);
CREATE TABLE floor_payments (id uuid PRIMARY KEY, order_id uuid NOT NULL, attempt int NOT NULL,
                             provider_payment_id text NOT NULL, UNIQUE (order_id, attempt));
CREATE TABLE floor_keys (key text PRIMARY KEY, status int NOT NULL, response bytea NOT NULL);
"""
PRODUCT = "INSERT INTO floor_products (id, price, currency) VALUES ($1, $2, $3)"

_CLAIM_ORDER = """
SELECT pg_try_advisory_xact_lock(1, hashtext($1)) AS locked,
       (SELECT response FROM floor_keys WHERE key = $1) AS stored,
       (SELECT price FROM floor_products WHERE id = $2 AND currency = $3) AS price,
       nextval('floor_order_number') AS number
"""
_WRITE_ORDER = """
WITH o AS (INSERT INTO floor_orders (id, number, currency, total, customer_email)
           VALUES ($1, $2, $3, $4, $5)),
     i AS (INSERT INTO floor_order_items (id, order_id, product_id, quantity, amount)
           VALUES ($6, $1, $7, $8, $4))
INSERT INTO floor_keys (key, status, response) VALUES ($9, 201, $10)
"""
_CLAIM_CHECKOUT = """
SELECT pg_try_advisory_xact_lock(1, hashtext($1)) AS locked,
       (SELECT response FROM floor_keys WHERE key = $1) AS stored, o.total, o.currency
FROM floor_orders o WHERE o.id = $2 FOR UPDATE
"""
_ATTEMPTS = "SELECT coalesce(max(attempt), 0) + 1 FROM floor_payments WHERE order_id = $1"
_WRITE_PAYMENT = """
WITH p AS (INSERT INTO floor_payments (id, order_id, attempt, provider_payment_id)
           VALUES ($1, $2, $3, $4))
INSERT INTO floor_keys (key, status, response) VALUES ($5, 201, $6)
"""
#: The gateway's side: one payment per provider idempotency key (as the sandbox's script).
_GATEWAY = """
local existing = redis.call('GET', KEYS[1])
if existing then return existing end
redis.call('SET', KEYS[1], ARGV[1], 'EX', 3600)
return ARGV[1]
"""


class Item(msgspec.Struct):
    product_id: uuid.UUID
    quantity: int = 1


class OrderIn(msgspec.Struct):
    currency: str
    customer_email: str
    items: list[Item]


class CheckoutIn(msgspec.Struct):
    provider: str | None = None


def _answer(status: int, body: bytes) -> Response[bytes]:
    return Response(body, status_code=status, media_type="application/json")


def _conflict() -> Response[bytes]:
    return _answer(409, b'{"error":{"code":"idempotency_request_in_progress"}}')


@post("/v1/orders", status_code=201)
async def create_order(request: Request[Any, Any, Any], data: OrderIn) -> Response[bytes]:
    key = request.headers.get("idempotency-key") or ""
    item = data.items[0]
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        claim = await conn.fetchrow(_CLAIM_ORDER, key, item.product_id, data.currency)
        if not claim["locked"]:
            return _conflict()
        if claim["stored"] is not None:
            return _answer(201, claim["stored"])
        if claim["price"] is None:
            return _answer(400, b'{"error":{"code":"unknown_product"}}')
        order_id, total = uuid.uuid4(), claim["price"] * item.quantity
        body = msgspec.json.encode({"id": str(order_id), "number": claim["number"],
                                    "total": total, "currency": data.currency,
                                    "pay_url": f"/pay/floor/{secrets.token_urlsafe(24)}"})
        await conn.execute(_WRITE_ORDER, order_id, claim["number"], data.currency, total,
                           data.customer_email, uuid.uuid4(), item.product_id, item.quantity,
                           key, body)
    return _answer(201, body)


@post("/v1/orders/{order_id:uuid}/checkout", status_code=201)
async def checkout(request: Request[Any, Any, Any], order_id: uuid.UUID,
                   data: CheckoutIn) -> Response[bytes]:
    key = request.headers.get("idempotency-key") or ""
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        claim = await conn.fetchrow(_CLAIM_CHECKOUT, key, order_id)
        if claim is None:
            return _answer(404, b'{"error":{"code":"not_found"}}')
        if not claim["locked"]:
            return _conflict()
        if claim["stored"] is not None:
            return _answer(201, claim["stored"])
        attempt = await conn.fetchval(_ATTEMPTS, order_id)
        payment_id = (await request.app.state.gateway(
            keys=[f"floor:{order_id}:{attempt}"], args=[f"pay_{secrets.token_hex(12)}"])).decode()
        body = msgspec.json.encode({"payment": {"id": payment_id, "status": "pending",
                                                "amount": claim["total"],
                                                "currency": claim["currency"]},
                                    "reused": False})
        await conn.execute(_WRITE_PAYMENT, uuid.uuid4(), order_id, attempt, payment_id, key,
                           body)
    return _answer(201, body)


def create_app() -> Litestar:
    import asyncpg
    import redis.asyncio as aioredis

    async def start(app: Litestar) -> None:
        app.state.pool = await asyncpg.create_pool(
            os.environ["PAYMESH_FLOOR_DSN"], min_size=1,
            max_size=int(os.environ.get("PAYMESH_FLOOR_POOL_SIZE", "5")))
        app.state.redis = aioredis.from_url(os.environ["PAYMESH_FLOOR_REDIS"])
        app.state.gateway = app.state.redis.register_script(_GATEWAY)  # EVALSHA

    async def stop(app: Litestar) -> None:
        await app.state.pool.close()
        await app.state.redis.aclose()

    return Litestar(route_handlers=[create_order, checkout, healthz], debug=False,
                    openapi_config=None, on_startup=[start], on_shutdown=[stop])


if __name__ == "__main__":
    main(__doc__, "bench.floor_app:create_app")
