"""Inventory reservations (T7): no oversell under concurrency, release, expiry, deduction."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text

from core.db import utcnow
from tests.integration.test_orders_support import (
    assert_error,
    checkout,
    configure,
    gateway,  # noqa: F401 - fixture
    get_order,
    order,
    product,
    succeed,
    tenant_db,
)

pytestmark = pytest.mark.asyncio


async def stock_of(client, tenant, product_id: str) -> dict:  # noqa: ANN001
    return (await client.get(f"/v1/products/{product_id}", headers=tenant.headers)).json()


def line(product_id: str, quantity: int = 1) -> list[dict]:
    return [{"product_id": product_id, "quantity": quantity}]


async def test_fifty_buyers_for_the_last_five_units(client, make_tenant):
    tenant = await make_tenant()
    item = await product(client, tenant, name="Last few", price=1500, stock=5)

    async def buy() -> int:
        response = await client.post("/v1/orders", headers=tenant.headers, json={
            "customer_email": "buyer@example.com", "currency": "USD",
            "items": line(item["id"])})
        if response.status_code == 409:
            assert response.json()["error"]["code"] == "insufficient_stock"
            assert response.json()["error"]["product_id"] == item["id"]
        return response.status_code

    statuses = await asyncio.gather(*[buy() for _ in range(50)])
    assert statuses.count(201) == 5 and statuses.count(409) == 45, statuses
    after = await stock_of(client, tenant, item["id"])
    assert after["stock"] == 5 and after["reserved"] == 5 and after["available"] == 0
    listed = (await client.get("/v1/orders", headers=tenant.headers)).json()["data"]
    assert len(listed) == 5


async def test_multi_line_orders_hold_all_or_nothing(client, make_tenant):
    tenant = await make_tenant()
    plenty = await product(client, tenant, name="Plenty", stock=10)
    scarce = await product(client, tenant, name="Scarce", stock=1)
    untracked = await product(client, tenant, name="Untracked")
    error = assert_error(await client.post("/v1/orders", headers=tenant.headers, json={
        "customer_email": "a@b.co", "currency": "USD",
        "items": [*line(plenty["id"], 4), *line(scarce["id"], 2)]}), 409, "insufficient_stock")
    assert error["product_id"] == scarce["id"] and error["requested"] == 2
    assert (await stock_of(client, tenant, plenty["id"]))["reserved"] == 0
    # the same product on two lines is held once, for the sum
    made = await order(client, tenant, [*line(plenty["id"], 4), *line(plenty["id"], 3),
                                        *line(untracked["id"], 100)])
    assert made["total"] == 107 * 1000
    assert (await stock_of(client, tenant, plenty["id"]))["available"] == 3


async def test_cancel_releases_and_stock_cannot_drop_below_holds(client, make_tenant):
    tenant = await make_tenant()
    item = await product(client, tenant, stock=3)
    held = await order(client, tenant, line(item["id"], 2))
    assert_error(await client.patch(f"/v1/products/{item['id']}", json={"stock": 1},
                                    headers=tenant.headers), 409, "stock_reserved")
    await client.post(f"/v1/orders/{held['id']}/cancel", headers=tenant.headers)
    after = await stock_of(client, tenant, item["id"])
    assert after["reserved"] == 0 and after["stock"] == 3
    # cancelling twice releases nothing twice
    await client.post(f"/v1/orders/{held['id']}/cancel", headers=tenant.headers)
    assert (await stock_of(client, tenant, item["id"]))["reserved"] == 0


@pytest.mark.usefixtures("gateway")
async def test_expiry_releases_and_checkout_takes_units_again(client, make_tenant):
    from tenant.orders.reservations import expire_reservations

    tenant = await make_tenant()
    await configure(client, tenant)
    await client.patch("/v1/settings", json={"reservation_ttl_minutes": 10},
                       headers=tenant.headers)
    item = await product(client, tenant, stock=2)
    lapsed = await order(client, tenant, line(item["id"], 2))
    async with tenant_db(tenant.slug) as session:
        assert await expire_reservations(session, utcnow()) == 0
        assert await expire_reservations(session, utcnow() + timedelta(minutes=11)) == 1
    assert (await stock_of(client, tenant, item["id"]))["reserved"] == 0
    # somebody else takes one unit meanwhile; the lapsed order cannot get both back
    other = await order(client, tenant, line(item["id"], 1))
    assert_error(await checkout(client, tenant, lapsed["id"]), 409, "insufficient_stock")
    assert (await stock_of(client, tenant, item["id"]))["reserved"] == 1
    await client.post(f"/v1/orders/{other['id']}/cancel", headers=tenant.headers)
    started = await checkout(client, tenant, lapsed["id"])
    assert started.status_code == 201, started.text
    assert (await stock_of(client, tenant, item["id"]))["reserved"] == 2


@pytest.mark.usefixtures("gateway")
async def test_payment_turns_holds_into_deductions(client, make_tenant):
    tenant = await make_tenant()
    await configure(client, tenant)
    item = await product(client, tenant, stock=5)
    made = await order(client, tenant, line(item["id"], 3))
    payment = (await checkout(client, tenant, made["id"])).json()["payment"]
    assert await succeed(tenant.slug, payment) is True
    after = await stock_of(client, tenant, item["id"])
    assert after["stock"] == 2 and after["reserved"] == 0 and after["available"] == 2
    assert await succeed(tenant.slug, payment) is False  # a duplicate event deducts nothing
    assert (await stock_of(client, tenant, item["id"]))["stock"] == 2
    async with tenant_db(tenant.slug) as session:
        states = (await session.execute(text(
            "SELECT status FROM inventory_reservations WHERE order_id = :o"),
            {"o": uuid.UUID(made["id"])})).scalars().all()
    assert states == ["converted"]


@pytest.mark.usefixtures("gateway")
async def test_late_payment_after_expiry_is_deducted_or_flagged(client, make_tenant):
    from tenant.orders.reservations import expire_reservations

    tenant = await make_tenant()
    await configure(client, tenant)
    item = await product(client, tenant, stock=1)
    first = await order(client, tenant, line(item["id"]))
    payment = (await checkout(client, tenant, first["id"])).json()["payment"]
    async with tenant_db(tenant.slug) as session:
        await expire_reservations(session, utcnow() + timedelta(hours=1))
    rival = await order(client, tenant, line(item["id"]))  # takes the only unit
    assert await succeed(tenant.slug, payment) is True  # the money moved: it is recorded
    paid = await get_order(client, tenant, first["id"])
    assert paid["status"] == "paid" and paid["flags"]["oversold"] == [item["id"]]
    assert (await stock_of(client, tenant, item["id"]))["stock"] == 1  # never negative
    await client.post(f"/v1/orders/{rival['id']}/cancel", headers=tenant.headers)


@pytest.mark.usefixtures("gateway")
async def test_payment_failure_releases(client, make_tenant):
    from tests.integration.test_orders_support import fail

    tenant = await make_tenant()
    await configure(client, tenant)
    item = await product(client, tenant, stock=4)
    made = await order(client, tenant, line(item["id"], 4))
    payment = (await checkout(client, tenant, made["id"])).json()["payment"]
    assert await fail(tenant.slug, payment) is True
    assert (await get_order(client, tenant, made["id"]))["status"] == "payment_failed"
    assert (await stock_of(client, tenant, item["id"]))["reserved"] == 0
    again = await checkout(client, tenant, made["id"])  # a retry takes the units again
    assert again.status_code == 201, again.text
    assert (await get_order(client, tenant, made["id"]))["status"] == "pending_payment"
    assert (await stock_of(client, tenant, item["id"]))["reserved"] == 4
