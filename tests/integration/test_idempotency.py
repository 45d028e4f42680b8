"""``Idempotency-Key`` (T6): replay, reuse with another body, in flight, concurrency, expiry."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from core.db import utcnow
from core.idempotency import RETENTION, IdempotencyRecord, _lock_id, purge_expired
from tests.integration.test_orders_support import assert_error, new_key, tenant_db

pytestmark = pytest.mark.asyncio

BODY = {"customer_email": "pat@example.com", "currency": "USD",
        "items": [{"description": "Consultation", "quantity": 1, "unit_amount": 5000}]}


def keyed(tenant, key: str) -> dict[str, str]:  # noqa: ANN001
    return {**tenant.headers, "Idempotency-Key": key}


async def order_count(client, tenant) -> int:  # noqa: ANN001
    return len((await client.get("/v1/orders", headers=tenant.headers)).json()["data"])


async def test_replay_returns_the_stored_response(client, make_tenant):
    tenant = await make_tenant()
    key = new_key()
    first = await client.post("/v1/orders", json=BODY, headers=keyed(tenant, key))
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    # same body, other key order and spacing: still "the same request"
    reordered = {"items": BODY["items"], "currency": "USD", "customer_email": "pat@example.com"}
    again = await client.post("/v1/orders", json=reordered, headers=keyed(tenant, key))
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert await order_count(client, tenant) == 1


async def test_same_key_other_body_or_endpoint_is_422(client, make_tenant):
    tenant = await make_tenant()
    key = new_key()
    assert (await client.post("/v1/orders", json=BODY,
                              headers=keyed(tenant, key))).status_code == 201
    other = {**BODY, "customer_email": "someone@example.com"}
    error = assert_error(await client.post("/v1/orders", json=other, headers=keyed(tenant, key)),
                         422, "idempotency_key_reused")
    assert error["param"] == "Idempotency-Key"
    assert_error(await client.post("/v1/products", headers=keyed(tenant, key), json={
        "name": "x", "kind": "service", "price": 1, "currency": "USD"}), 422,
        "idempotency_key_reused")
    assert await order_count(client, tenant) == 1
    assert (await client.get("/v1/products", headers=tenant.headers)).json()["data"] == []


async def test_keys_are_per_tenant(client, make_tenant):
    one, two = await make_tenant(), await make_tenant()
    key = new_key()
    a = await client.post("/v1/orders", json=BODY, headers=keyed(one, key))
    b = await client.post("/v1/orders", json=BODY, headers=keyed(two, key))
    assert a.status_code == b.status_code == 201
    assert "Idempotent-Replayed" not in b.headers and a.json()["id"] != b.json()["id"]


async def test_in_flight_is_409(client, make_tenant):
    tenant = await make_tenant()
    key = new_key()
    # another request holding this key: its transaction holds the key's lock
    async with tenant_db(tenant.slug) as session:
        await session.execute(text("SELECT pg_advisory_xact_lock(:ns, :id)"),
                              {"ns": 0x49444D50, "id": _lock_id(key)})
        busy = await client.post("/v1/orders", json=BODY, headers=keyed(tenant, key))
        assert_error(busy, 409, "idempotency_request_in_progress")
    done = await client.post("/v1/orders", json=BODY, headers=keyed(tenant, key))
    assert done.status_code == 201 and "Idempotent-Replayed" not in done.headers
    assert await order_count(client, tenant) == 1


async def test_twenty_concurrent_identical_posts_make_one_order(client, make_tenant):
    tenant = await make_tenant()
    key = new_key()
    responses = await asyncio.gather(*[
        client.post("/v1/orders", json=BODY, headers=keyed(tenant, key)) for _ in range(20)])
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, statuses
    created = [r for r in responses if r.status_code == 201]
    assert len({r.json()["id"] for r in created}) == 1
    assert sum("Idempotent-Replayed" not in r.headers for r in created) == 1
    for r in responses:
        if r.status_code == 409:
            assert r.json()["error"]["code"] == "idempotency_request_in_progress"
    assert await order_count(client, tenant) == 1
    # once settled, every retry replays
    late = await client.post("/v1/orders", json=BODY, headers=keyed(tenant, key))
    assert late.status_code == 201 and late.headers["Idempotent-Replayed"] == "true"


async def test_failed_requests_are_not_remembered(client, make_tenant):
    tenant = await make_tenant()
    key = new_key()
    bad = {**BODY, "currency": "XYZ"}
    assert_error(await client.post("/v1/orders", json=bad, headers=keyed(tenant, key)), 400)
    fixed = await client.post("/v1/orders", json=BODY, headers=keyed(tenant, key))
    assert fixed.status_code == 201 and "Idempotent-Replayed" not in fixed.headers


async def test_bad_keys_are_rejected(client, make_tenant):
    tenant = await make_tenant()
    for key in ("x" * 256, "   "):
        assert_error(await client.post("/v1/orders", json=BODY, headers=keyed(tenant, key)), 400)
    assert await order_count(client, tenant) == 0


async def test_kept_for_24_hours_then_forgotten(client, make_tenant):
    tenant = await make_tenant()
    key = new_key()
    first = await client.post("/v1/orders", json=BODY, headers=keyed(tenant, key))
    async with tenant_db(tenant.slug) as session:
        row = (await session.scalars(
            select(IdempotencyRecord).where(IdempotencyRecord.key == key))).one()
        assert row.expires_at - row.created_at >= timedelta(hours=24) == RETENTION
        assert await purge_expired(session, utcnow()) == 0
        assert await purge_expired(session, utcnow() + timedelta(hours=23)) == 0
    # a day later the key is free again: the same request runs anew
    async with tenant_db(tenant.slug) as session:
        await session.execute(text(
            "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' "
            "WHERE key = :k"), {"k": key})
    fresh = await client.post("/v1/orders", json=BODY, headers=keyed(tenant, key))
    assert fresh.status_code == 201 and "Idempotent-Replayed" not in fresh.headers
    assert fresh.json()["id"] != first.json()["id"]
    async with tenant_db(tenant.slug) as session:
        assert await purge_expired(session, utcnow() + timedelta(hours=25)) == 1
