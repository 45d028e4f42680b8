"""A coupon linked to a Polar discount, end to end (issue 13, SPEC 3a **Provider sync**).

The tenant configures Polar against the polar-sdk model-built double
(``tests/providers/fake_polar.py``) and cash. Orders using the coupon are paid in cash
(another provider than the discount's): once the payment commits, the
``sync_coupon_discount`` actor, in a real Dramatiq worker, brings Polar's discount in line
through the Polar provider (the SDK against the double): 5 → 4 → 3 (an absolute target
per redemption, never "one less than now"), the last slot deletes the discount, and a
redelivered message or a replay through the API writes nothing more. An order paid
through Polar itself needs no sync.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.test_polar_e2e import polar_shop
from tests.e2e.test_providers_e2e import wait_for
from tests.integration.test_coupons_api import coupon, place, redemptions

pytestmark = pytest.mark.asyncio


async def paid_in_cash(client: httpx.AsyncClient, tenant: Any, code: str) -> str:
    made = await place(client, tenant, code)
    assert made.status_code == 201, made.text
    paid = await client.post(f"/v1/orders/{made.json()['id']}/mark-paid",
                             headers=tenant.headers)
    assert paid.status_code == 200, paid.text
    return str(made.json()["id"])


async def sync_of(client: httpx.AsyncClient, tenant: Any, coupon_id: str,
                  order_id: str) -> dict[str, Any]:
    found = {r["order_id"]: r for r in await redemptions(client, tenant, coupon_id)}
    return found[order_id]["sync"]


async def synced(client: httpx.AsyncClient, tenant: Any, coupon_id: str,
                 order_id: str) -> dict[str, Any]:
    async def done() -> bool:
        return (await sync_of(client, tenant, coupon_id, order_id))["status"] == "done"

    await wait_for(done, 30, f"the discount sync of order {order_id}")
    return await sync_of(client, tenant, coupon_id, order_id)


async def test_cash_orders_bring_the_polar_discount_in_line_once_each(
        client, make_tenant, owner_headers, start_worker):
    tenant = await make_tenant("couponsync", currency="USD")
    async with polar_shop(client, owner_headers, tenant) as fake:
        assert (await client.put("/v1/providers/cash", json={},
                                 headers=tenant.headers)).status_code == 200
        start_worker()
        discount_id = fake.add_discount(max_redemptions=5, redemptions=1)
        linked = await coupon(client, tenant, percent_off=10,
                              provider_discount={"provider": "polar", "id": discount_id})

        first = await paid_in_cash(client, tenant, linked["code"])
        shown = await synced(client, tenant, linked["id"], first)
        assert (shown["action"], shown["attempts"]) == ("decremented", 1)
        assert fake.discounts[discount_id]["max_redemptions"] == 4
        second = await paid_in_cash(client, tenant, linked["code"])
        assert (await synced(client, tenant, linked["id"], second))["action"] == "decremented"
        assert fake.discounts[discount_id]["max_redemptions"] == 3

        # a replay through the API of a done sync answers it as it is: no third write
        replay = await client.post(
            f"/v1/coupons/{linked['id']}/redemptions/{first}/resync", headers=tenant.headers)
        assert replay.status_code == 200, replay.text
        assert replay.json()["sync"]["status"] == "done"
        assert fake.discounts[discount_id]["max_redemptions"] == 3

        # the last slot at Polar: the discount is deleted
        last_id = fake.add_discount(max_redemptions=1)
        last = await coupon(client, tenant, amount_off=100, currency="USD",
                            provider_discount={"provider": "polar", "id": last_id})
        order_id = await paid_in_cash(client, tenant, last["code"])
        assert (await synced(client, tenant, last["id"], order_id))["action"] == "deleted"
        assert last_id not in fake.discounts


async def test_an_order_paid_through_polar_needs_no_sync(
        client, make_tenant, owner_headers, live_api, start_worker):
    from tests.providers.test_polar import signed

    tenant = await make_tenant("couponpolar", currency="USD")
    async with polar_shop(client, owner_headers, tenant) as fake, \
            httpx.AsyncClient(base_url=live_api, timeout=10) as polar_sender:
        start_worker()
        discount_id = fake.add_discount(max_redemptions=5)
        linked = await coupon(client, tenant, percent_off=20,
                              provider_discount={"provider": "polar", "id": discount_id})
        made = await place(client, tenant, linked["code"], amount=5_000)
        assert made.status_code == 201, made.text
        order = made.json()
        assert (order["discount"], order["total"]) == (1_000, 4_000)
        checkout = await client.post(
            f"/v1/orders/{order['id']}/checkout", json={"provider": "polar"},
            headers={**tenant.headers, "Idempotency-Key": uuid.uuid4().hex})
        assert checkout.status_code == 201, checkout.text
        checkout_id = checkout.json()["payment"]["provider_payment_id"]
        # Polar is asked for the discounted total, with its own discount codes off
        assert (fake.checkouts[checkout_id]["amount"],
                fake.checkouts[checkout_id]["allow_discount_codes"]) == (4_000, False)
        headers, body = signed(fake.pay(checkout_id),
                               webhook_id=f"msg_{uuid.uuid4().hex}")
        delivered = await polar_sender.post(f"/webhooks/{tenant.slug}/polar", content=body,
                                            headers=headers)
        assert delivered.status_code == 200, delivered.text

        async def redeemed() -> bool:
            rows = await redemptions(client, tenant, linked["id"])
            return bool(rows) and rows[0]["status"] == "redeemed"

        await wait_for(redeemed, 30, "order.paid → worker → redeemed")
        [row] = await redemptions(client, tenant, linked["id"])
        assert row["sync"]["status"] == "not_linked"
        assert fake.discounts[discount_id]["max_redemptions"] == 5
