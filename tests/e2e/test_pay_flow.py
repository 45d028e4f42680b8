"""End to end over real HTTP against a live server: a customer pays an invoice.

The "browser" is a plain HTTP client that only does what a browser without JavaScript
does: load the page, submit its form, follow redirects to the sandbox's hosted page and
back. Webhook delivery belongs to the worker (tested elsewhere); here the order is
settled by what the worker calls (``mark_payment_succeeded``) or by the return page
asking the provider.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.integration.test_orders_support import TEST_ACTOR, tenant_db

pytestmark = pytest.mark.asyncio
SUCCESS = "4242424242424242"


@pytest_asyncio.fixture
async def shop(live_server: str, make_tenant: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    tenant = await make_tenant("e2e")
    async with httpx.AsyncClient(base_url=live_server, timeout=30,
                                 headers=tenant.headers) as api:
        configured = await api.put("/v1/providers/sandbox",
                                   json={"secret_key": "sk_sandbox_e2e_tests_key"})
        assert configured.status_code == 200, configured.text
        await api.patch("/v1/settings", json={"tax_rate": "8.25"})
        yield api, tenant


async def invoice(api: httpx.AsyncClient) -> tuple[dict, dict]:
    item = (await api.post("/v1/products", json={
        "name": "Knee brace", "kind": "physical", "price": 3999, "currency": "USD",
        "stock": 4})).json()
    made = await api.post("/v1/orders", json={
        "customer_email": "patient@example.com", "currency": "USD",
        "items": [{"product_id": item["id"], "quantity": 2},
                  {"description": "Fitting", "quantity": 1, "unit_amount": 2500}]},
        headers={"Idempotency-Key": f"e2e-{item['id']}"})
    assert made.status_code == 201, made.text
    return item, made.json()


async def start_paying(live_server: str, made: dict) -> tuple[httpx.AsyncClient, str]:
    browser = httpx.AsyncClient(timeout=30)
    page = await browser.get(made["pay_url"])
    assert page.status_code == 200 and "$113.64" in page.text, page.text  # 104.98 + 8.66 tax
    action = re.search(r'<form method="post" action="([^"]+)"', page.text).group(1)
    provider = re.search(r'name="provider" value="([^"]+)"', page.text).group(1)
    started = await browser.post(f"{live_server}{action}", data={"provider": provider})
    assert started.status_code == 303, started.text
    hosted = started.headers["location"]
    assert hosted.startswith(f"{live_server}/sandbox/checkout/")
    sandbox_page = await browser.get(hosted)
    assert sandbox_page.status_code == 200 and "card_number" in sandbox_page.text
    return browser, hosted


async def ledger_agrees(api: httpx.AsyncClient, made: dict, fee: int) -> None:
    body = (await api.get("/v1/ledger/balances?currency=USD")).json()
    assert all(t["balanced"] for t in body["trial_balance"])
    got = {r["account"]: r["balance"] for r in body["data"]}
    assert got["revenue"] + got["tax_payable"] == made["total"]
    assert got["tax_payable"] == made["tax"]
    assert got["provider_clearing:sandbox"] == made["total"] - fee
    assert got.get("provider_fees", 0) == fee and got["customer_receivable"] == 0
    journal = (await api.get(f"/v1/ledger/transactions?order_id={made['id']}")).json()["data"]
    assert [t["kind"] for t in journal] == ["payment.captured"]


async def test_checkout_then_worker_settles(live_server, shop):
    from tenant.payments import service as payments

    api, tenant = shop
    item, made = await invoice(api)
    browser, _ = await start_paying(live_server, made)
    await browser.aclose()
    attempts = (await api.get(f"/v1/payments?order_id={made['id']}")).json()["data"]
    assert [(p["provider"], p["status"]) for p in attempts] == [("sandbox", "pending")]
    assert (await api.get(f"/v1/orders/{made['id']}")).json()["payment_status"] == "pending"
    payment = attempts[0]
    async with tenant_db(tenant.slug) as session:  # what the webhook worker will do
        changed = await payments.mark_payment_succeeded(
            session, provider="sandbox", provider_payment_id=payment["provider_payment_id"],
            amount=payment["amount"], currency="USD", fee_amount=362, actor=TEST_ACTOR)
    assert changed is True
    order = (await api.get(f"/v1/orders/{made['id']}")).json()
    assert order["status"] == "paid" and order["payment_status"] == "paid"
    await ledger_agrees(api, made, fee=362)
    stock = (await api.get(f"/v1/products/{item['id']}")).json()
    assert stock["stock"] == 2 and stock["reserved"] == 0


async def test_customer_pays_with_the_sandbox_card(live_server, shop):
    api, _ = shop
    item, made = await invoice(api)
    browser, hosted = await start_paying(live_server, made)
    try:
        paid = await browser.post(hosted, data={"card_number": SUCCESS})
        assert paid.status_code == 303
        back = paid.headers["location"]
        assert back.startswith(made["pay_url"] + "/success?")
        result = await browser.get(back)
        assert result.status_code == 200 and "Payment received" in result.text
        again = await browser.get(made["pay_url"])
        assert "has been paid" in again.text and "<form" not in again.text
    finally:
        await browser.aclose()
    order = (await api.get(f"/v1/orders/{made['id']}")).json()
    assert order["status"] == "paid"
    payment = (await api.get(f"/v1/payments?order_id={made['id']}")).json()["data"][0]
    assert payment["status"] == "succeeded" and payment["fee_amount"] > 0
    await ledger_agrees(api, made, fee=payment["fee_amount"])
    assert (await api.get(f"/v1/products/{item['id']}")).json()["stock"] == 2
