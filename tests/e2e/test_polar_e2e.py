"""Polar end to end through HTTP (issue 13), against the polar-sdk model-built double.

The tenant configures Polar (``PUT /v1/providers/polar``) with the catalog's sandbox API
base pointed at the double (``tests/providers/fake_polar.py``, a real loopback server the
SDK reaches through its ``base_url``); an order's checkout creates a Polar checkout at the
order total; the customer pays on the double; Polar's ``order.paid`` webhook, signed per
Standard Webhooks (and accepted by polar-sdk's own ``validate_event`` first), goes to the
live API process and a real Dramatiq worker applies it. The refund goes through Polar's
refunds API and its ``refund.updated`` webhook ends the order ``refunded``. Forged and
stale deliveries are 4xx and store nothing; a paid amount or currency that differs from
the attempt never marks the order paid.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from tests.e2e.provider_fakes import (
    assert_paid_once,
    catalog_pointed_at,
    configure,
    create_order,
    get_order,
    inbox,
    ledger_for,
    payments_of,
    process_in_process,
    start_checkout,
)
from tests.e2e.test_provider_refunds import refund, refunds_of
from tests.e2e.test_providers_e2e import wait_for
from tests.providers.fake_polar import TOKEN, FakePolar
from tests.providers.test_polar import PRODUCT, SECRET, signed

pytestmark = pytest.mark.asyncio


@asynccontextmanager
async def polar_shop(client: httpx.AsyncClient, owner_headers: dict[str, str],
                     tenant: Any) -> AsyncIterator[FakePolar]:
    fake = FakePolar()
    await fake.start()
    try:
        async with catalog_pointed_at(client, owner_headers, "polar", fake.url):
            configured = await configure(client, tenant, "polar", {
                "secret_key": TOKEN, "webhook_secret": SECRET,
                "config": {"product_id": PRODUCT}})
            assert configured["environment"] == "sandbox" and configured["has_webhook_secret"]
            tested = await client.post("/v1/providers/polar/test", headers=tenant.headers)
            assert tested.status_code == 200 and tested.json()["ok"] is True, tested.text
            yield fake
    finally:
        await fake.stop()


async def polar_checkout(client: httpx.AsyncClient, fake: FakePolar, tenant: Any,
                         amount: int) -> tuple[dict[str, Any], str]:
    order = await create_order(client, tenant, amount, "USD", "Video consultation")
    checkout = await start_checkout(client, tenant, order["id"], "polar")
    checkout_id = checkout["payment"]["provider_payment_id"]
    polar = fake.checkouts[checkout_id]
    assert checkout["redirect_url"] == polar["url"]
    assert (polar["amount"], polar["currency"], polar["allow_discount_codes"]) == (
        order["total"], "usd", False)
    assert polar["metadata"]["order_id"] == order["id"]
    assert polar["metadata"]["tenant"] == tenant.slug
    return order, checkout_id


async def test_polar_checkout_webhook_worker_refund(client, make_tenant, owner_headers,
                                                     live_api, start_worker):
    tenant = await make_tenant("polar", currency="USD")
    async with polar_shop(client, owner_headers, tenant) as fake, \
            httpx.AsyncClient(base_url=live_api, timeout=10) as polar_sender:
        start_worker()
        order, checkout_id = await polar_checkout(client, fake, tenant, 4_250)
        assert (await get_order(client, tenant, order["id"]))["payment_status"] == "pending"

        url = f"/webhooks/{tenant.slug}/polar"
        # forged (another key), tampered and stale deliveries: 4xx, nothing stored
        payload = fake.pay(checkout_id)
        headers, body = signed(payload, key=b"someone else", check_with_sdk=False)
        assert (await polar_sender.post(url, content=body, headers=headers)).status_code == 400
        headers, body = signed(payload)
        tampered = body.replace(b'"net_amount":4250', b'"net_amount":1')
        assert tampered != body
        assert (await polar_sender.post(url, content=tampered,
                                        headers=headers)).status_code == 400
        headers, stale = signed(payload, stamp=int(time.time()) - 3_600, check_with_sdk=False)
        refused = await polar_sender.post(url, content=stale, headers=headers)
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "stale_signature"
        assert await inbox(client, tenant, "polar") == []

        # the real delivery (checked by polar-sdk's validate_event in ``signed``)
        headers, body = signed(payload, webhook_id=f"msg_{uuid.uuid4().hex}")
        delivered = await polar_sender.post(url, content=body, headers=headers)
        assert delivered.status_code == 200, delivered.text

        async def paid() -> bool:
            return (await get_order(client, tenant, order["id"]))["status"] == "paid"

        await wait_for(paid, 30, "order.paid → live API → worker → paid")
        payment = await assert_paid_once(client, tenant, order, "polar", fee=0)
        [event] = await inbox(client, tenant, "polar")
        assert (event["type"], event["status"]) == ("payment.succeeded", "processed")
        assert event["provider_event_id"] == headers["webhook-id"]
        again = await polar_sender.post(url, content=body, headers=headers)
        assert again.status_code == 200 and again.json()["duplicate"] is True

        # the refund through Polar's API: pending until Polar's refund webhook
        fake.refund_status = "pending"
        sent = await refund(client, tenant, order["id"], reason="appointment cancelled")
        assert sent.status_code == 201, sent.text
        row = sent.json()
        assert (row["status"], row["amount"], row["provider"]) == ("pending", 4_250, "polar")
        polar_refund = fake.refunds[row["provider_refund_id"]]
        assert polar_refund["reason"] == "customer_request"
        assert polar_refund["metadata"]["paymesh_reason"] == "appointment cancelled"
        assert polar_refund["metadata"]["paymesh_idempotency_key"] == (
            f"{tenant.slug}:refund:{row['id']}")
        assert polar_refund["order_id"] == payload["data"]["id"]

        polar_refund["status"] = "succeeded"
        fake.refunded(polar_refund)
        headers, body = signed(fake.event("refund.updated", polar_refund))
        delivered = await polar_sender.post(url, content=body, headers=headers)
        assert delivered.status_code == 200, delivered.text

        async def refunded() -> bool:
            return (await get_order(client, tenant, order["id"]))["status"] == "refunded"

        await wait_for(refunded, 30, "refund.updated → live API → worker → refunded")
        # order.refunded (the running total) is kept for the record and changes nothing
        headers, body = signed(fake.event("order.refunded", fake.orders[polar_refund["order_id"]]))
        assert (await polar_sender.post(url, content=body, headers=headers)).status_code == 200

        async def all_processed() -> bool:
            events = await inbox(client, tenant, "polar")
            return len(events) == 3 and all(e["status"] == "processed" for e in events)

        await wait_for(all_processed, 30, "every Polar event processed")

    state = await get_order(client, tenant, order["id"])
    assert (state["status"], state["payment_status"], state["amount_refunded"]) == (
        "refunded", "refunded", 4_250)
    [done] = await refunds_of(client, tenant, order["id"])
    assert (done["id"], done["status"]) == (row["id"], "succeeded")
    assert sorted(t["kind"] for t in await ledger_for(client, tenant, order["id"])) == [
        "payment.captured", "refund.succeeded"]
    assert payment["provider_payment_id"] == checkout_id


@pytest.mark.parametrize(("amount", "currency"), [(4_000, None), (4_250, "eur")])
async def test_polar_amount_or_currency_mismatch_is_not_paid(client, make_tenant,
                                                             owner_headers, amount, currency):
    tenant = await make_tenant("polar-mismatch", currency="USD")
    async with polar_shop(client, owner_headers, tenant) as fake:
        order, checkout_id = await polar_checkout(client, fake, tenant, 4_250)
        headers, body = signed(fake.pay(checkout_id, amount=amount, currency=currency))
        response = await client.post(f"/webhooks/{tenant.slug}/polar", content=body,
                                     headers=headers)
        assert response.status_code == 200, response.text
        [event] = await inbox(client, tenant, "polar")
        assert await process_in_process(tenant, event["id"]) == "processed"
    state = await get_order(client, tenant, order["id"])
    assert state["status"] == "pending_payment" and state["payment_status"] != "paid", state
    [attempt] = await payments_of(client, tenant, order["id"])
    assert attempt["status"] != "succeeded" and attempt["flags"], attempt
    journal = await ledger_for(client, tenant, order["id"])
    assert "payment.captured" not in [t["kind"] for t in journal], journal
