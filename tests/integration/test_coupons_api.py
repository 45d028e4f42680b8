"""Coupons (SPEC 3a, T13) through the HTTP API: bad input, the discount on an order,
the four refusals, the cap under concurrency, release on cancel, redemption on payment,
the ledger's gross / discounts / net."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from core.db import utcnow
from tests.integration.test_orders_support import assert_error, balances, get_order, tenant_db

pytestmark = pytest.mark.asyncio


async def coupon(client: Any, tenant: Any, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/coupons", json={"code": f"C{uuid.uuid4().hex[:8]}",
                                                      **body}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def place(client: Any, tenant: Any, code: str | None, amount: int = 1005,
                currency: str = "USD") -> Any:
    body: dict[str, Any] = {"customer_email": "pat@example.com", "currency": currency,
                            "items": [{"description": "Lesson", "quantity": 1,
                                       "unit_amount": amount}]}
    if code is not None:
        body["coupon_code"] = code
    return await client.post("/v1/orders", json=body, headers=tenant.headers)


async def redemptions(client: Any, tenant: Any, coupon_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/coupons/{coupon_id}/redemptions",
                                headers=tenant.headers, params={"limit": 100})
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def read(client: Any, tenant: Any, coupon_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/coupons/{coupon_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_create_read_list_and_bad_input(client, make_tenant):
    tenant = await make_tenant()
    made = await coupon(client, tenant, code="Summer10", percent_off=10, max_redemptions=5,
                        provider_discount={"provider": "polar", "id": "disc_1"})
    assert made["code"] == "Summer10" and made["percent_off"] == 10
    assert made["amount_off"] is None and made["currency"] is None
    assert (made["times_redeemed"], made["reserved"], made["active"]) == (0, 0, True)
    assert made["provider_discount"] == {"provider": "polar", "id": "disc_1"}
    assert await read(client, tenant, made["id"]) == made
    listed = await client.get("/v1/coupons", headers=tenant.headers,
                              params={"code": "SUMMER10"})
    assert [c["id"] for c in listed.json()["data"]] == [made["id"]]

    taken = await client.post("/v1/coupons", json={"code": "SUMMER10", "percent_off": 5},
                              headers=tenant.headers)
    assert assert_error(taken, 409, "coupon_code_taken")["param"] == "code"
    bad = [
        ({"percent_off": 0}, "percent_off"), ({"percent_off": 101}, "percent_off"),
        ({"percent_off": 10.5}, "percent_off"), ({"percent_off": -5}, "percent_off"),
        ({"amount_off": 500}, "currency"), ({"amount_off": -1, "currency": "USD"}, "amount_off"),
        ({"amount_off": 0, "currency": "USD"}, "amount_off"),
        ({"amount_off": 500, "currency": "XXX"}, "currency"),
        ({"percent_off": 10, "amount_off": 500, "currency": "USD"}, "percent_off"),
        ({}, "amount_off"), ({"percent_off": 10, "currency": "USD"}, "currency"),
        ({"percent_off": 10, "max_redemptions": 0}, "max_redemptions"),
    ]
    for body, param in bad:
        response = await client.post("/v1/coupons", json={"code": "BAD1", **body},
                                     headers=tenant.headers)
        assert assert_error(response, 422)["param"] == param, (body, response.text)
    assert (await client.get("/v1/coupons", headers=tenant.headers)).json()["data"] == [made]

    key = {"Idempotency-Key": uuid.uuid4().hex, **tenant.headers}
    body = {"code": "FIVEOFF", "amount_off": 500, "currency": "usd"}
    first = await client.post("/v1/coupons", json=body, headers=key)
    again = await client.post("/v1/coupons", json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() and first.json()["currency"] == "USD"


async def test_the_discount_on_an_order_and_the_four_refusals(client, make_tenant):
    tenant = await make_tenant()
    await client.patch("/v1/settings", json={"tax_rate": "10"}, headers=tenant.headers)
    ten = await coupon(client, tenant, code="TENOFF", percent_off=10)
    made = (await place(client, tenant, "tenoff", amount=1005)).json()
    # 10 % of 1005 = 100.5 → 101 (halves away from zero); tax on what is left
    assert (made["subtotal"], made["discount"], made["coupon_code"]) == (1005, 101, "TENOFF")
    assert made["tax"] == 90 and made["total"] == 1005 - 101 + 90  # 10 % of 904 = 90.4
    assert made["original_amount"] == 1005 + 101  # 10 % of 1005 = 100.5 → 101
    assert (await get_order(client, tenant, made["id"]))["discount"] == 101

    fixed = await coupon(client, tenant, amount_off=700, currency="USD")
    small = (await place(client, tenant, fixed["code"], amount=500)).json()
    assert (small["discount"], small["tax"], small["total"]) == (500, 0, 0)  # never below 0

    async def refused(code: str, expected: str, currency: str = "USD") -> None:
        response = await place(client, tenant, code, currency=currency)
        assert assert_error(response, 422, expected)["param"] == "coupon_code"

    await refused("NOPE", "coupon_invalid")
    await refused(fixed["code"], "coupon_currency_mismatch", currency="EUR")
    off = await client.patch(f"/v1/coupons/{ten['id']}", json={"active": False},
                             headers=tenant.headers)
    assert off.status_code == 200 and off.json()["active"] is False
    await refused("TENOFF", "coupon_invalid")
    await client.patch(f"/v1/coupons/{ten['id']}", headers=tenant.headers, json={
        "active": True, "expires_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()})
    await refused("TENOFF", "coupon_expired")
    one = await coupon(client, tenant, percent_off=50, max_redemptions=1)
    assert (await place(client, tenant, one["code"])).status_code == 201
    await refused(one["code"], "coupon_exhausted")
    # a refused order left nothing behind
    assert (await read(client, tenant, one["id"]))["reserved"] == 1
    assert len(await redemptions(client, tenant, one["id"])) == 1


async def test_fifty_buyers_ten_slots_then_a_cancel_frees_one(client, make_tenant):
    tenant = await make_tenant()
    capped = await coupon(client, tenant, percent_off=20, max_redemptions=10)
    answers = await asyncio.gather(*(place(client, tenant, capped["code"]) for _ in range(50)))
    won = [a.json() for a in answers if a.status_code == 201]
    lost = [a for a in answers if a.status_code != 201]
    assert len(won) == 10 and len(lost) == 40
    for response in lost:
        assert_error(response, 422, "coupon_exhausted")
    state = await read(client, tenant, capped["id"])
    assert (state["reserved"], state["times_redeemed"]) == (10, 0)
    await refused_once(client, tenant, capped["code"])

    cancelled = await client.post(f"/v1/orders/{won[0]['id']}/cancel", headers=tenant.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert (await read(client, tenant, capped["id"]))["reserved"] == 9
    statuses = {r["order_id"]: r["status"] for r in await redemptions(client, tenant,
                                                                      capped["id"])}
    assert statuses[won[0]["id"]] == "released"
    assert (await place(client, tenant, capped["code"])).status_code == 201
    await refused_once(client, tenant, capped["code"])

    # an order left unpaid too long is cancelled by the scheduler: its slot comes back
    from tenant.orders.service import cancel_unpaid_orders

    async with tenant_db(tenant.slug) as session:
        await session.execute(text("UPDATE orders SET created_at = now() - interval '3 days' "
                                   "WHERE id = :id"), {"id": uuid.UUID(won[1]["id"])})
    async with tenant_db(tenant.slug) as session:
        assert await cancel_unpaid_orders(session, utcnow()) == 1
    assert (await read(client, tenant, capped["id"]))["reserved"] == 9
    assert (await place(client, tenant, capped["code"])).status_code == 201
    state = await read(client, tenant, capped["id"])
    assert state["reserved"] + state["times_redeemed"] == 10


async def refused_once(client: Any, tenant: Any, code: str) -> None:
    assert_error(await place(client, tenant, code), 422, "coupon_exhausted")


async def test_paid_redeems_posts_the_discount_and_a_refund_keeps_it(client, make_tenant):
    tenant = await make_tenant()
    await client.put("/v1/providers/cash", json={}, headers=tenant.headers)
    linked = await coupon(client, tenant, percent_off=25, max_redemptions=3,
                          provider_discount={"provider": "polar", "id": "disc_9"})
    plain = await coupon(client, tenant, amount_off=100, currency="USD")
    first = (await place(client, tenant, linked["code"], amount=2000)).json()
    second = (await place(client, tenant, plain["code"], amount=2000)).json()
    for made in (first, second):
        paid = await client.post(f"/v1/orders/{made['id']}/mark-paid", headers=tenant.headers)
        assert paid.status_code == 200, paid.text
    state = await read(client, tenant, linked["id"])
    assert (state["times_redeemed"], state["reserved"]) == (1, 0)
    redeemed, = await redemptions(client, tenant, linked["id"])
    assert redeemed["status"] == "redeemed" and redeemed["provider"] == "cash"
    assert redeemed["discount"] == 500 and redeemed["currency"] == "USD"
    # paid through cash, the discount lives at polar: a sync is due
    assert redeemed["sync"]["status"] == "pending" and redeemed["sync"]["action"] is None
    other, = await redemptions(client, tenant, plain["id"])
    assert other["sync"]["status"] == "not_linked"
    assert_error(await client.post(
        f"/v1/coupons/{plain['id']}/redemptions/{second['id']}/resync",
        headers=tenant.headers), 409, "sync_not_linked")

    books = await balances(client, tenant, "USD")
    assert books["discounts/USD"] == 500 + 100
    assert books["revenue/USD"] == 2000 + 2000  # gross; net = revenue - discounts
    assert_error(await client.patch(f"/v1/coupons/{linked['id']}", json={"max_redemptions": 0},
                                    headers=tenant.headers), 422)
    low = await client.patch(f"/v1/coupons/{plain['id']}", json={"max_redemptions": 1},
                             headers=tenant.headers)
    assert low.status_code == 200, low.text
    assert_error(await place(client, tenant, plain["code"]), 422, "coupon_exhausted")

    refund = await client.post(f"/v1/orders/{second['id']}/refunds", json={},
                               headers={**tenant.headers, "Idempotency-Key": uuid.uuid4().hex})
    assert refund.status_code == 201, refund.text
    marked = await client.post(f"/v1/refunds/{refund.json()['id']}/mark-refunded",
                               headers=tenant.headers)
    assert marked.status_code == 200, marked.text
    assert (await read(client, tenant, plain["id"]))["times_redeemed"] == 1
    assert (await redemptions(client, tenant, plain["id"]))[0]["status"] == "redeemed"
    # a cancel after payment is refused by the order table; nothing is released either
    assert (await client.post(f"/v1/orders/{second['id']}/cancel",
                              headers=tenant.headers)).status_code == 409
