"""The customer's payment page (T8), in-process: rendering, checkout by form, the sandbox
hosted page, result pages, friendly errors and the rate limit."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.test_orders_support import (
    configure,
    gateway,  # noqa: F401 - fixture
    get_order,
    order,
    product,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("gateway")]
SUCCESS, DECLINED = "4242424242424242", "4000000000000002"


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def assert_friendly(response: httpx.Response, status: int, *phrases: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "Traceback" not in response.text and '{"error"' not in response.text
    for phrase in phrases:
        assert phrase in response.text, response.text


async def test_open_invoice_shows_amounts_and_providers(client, make_tenant):
    tenant = await make_tenant(currency="KWD")
    await configure(client, tenant, currencies=["KWD", "USD", "JPY"])
    await client.patch("/v1/settings", json={"tax_rate": "5"}, headers=tenant.headers)
    made = await order(client, tenant, currency="KWD",
                       items=[{"description": "Consultation <b>", "quantity": 2,
                               "unit_amount": 1255}])
    page = await client.get(path_of(made["pay_url"]))
    assert_friendly(page, 200, f"Invoice {made['number']}", "KWD2.510", "KWD0.126",
                    "KWD2.636", "Tax (5%)", 'value="sandbox"', "Paymesh Sandbox",
                    f"Tenant {tenant.slug}", "Consultation &lt;b&gt;")
    assert "<script" not in page.text
    assert f'action="/pay/{tenant.slug}/' in page.text
    yen = await order(client, tenant, currency="JPY",
                      items=[{"description": "x", "quantity": 3, "unit_amount": 1234}])
    assert_friendly(await client.get(path_of(yen["pay_url"])), 200, "¥3,702")
    usd = await order(client, tenant, items=[{"description": "x", "quantity": 3,
                                              "unit_amount": 1999}])
    assert_friendly(await client.get(path_of(usd["pay_url"])), 200, "$59.97", "$62.97")


async def test_paid_cancelled_and_unknown_links(client, make_tenant, owner_headers):
    tenant = await make_tenant()
    paid, cancelled = await order(client, tenant), await order(client, tenant)
    await client.put("/v1/providers/cash", json={}, headers=tenant.headers)  # mark-paid needs it
    await client.post(f"/v1/orders/{paid['id']}/mark-paid", headers=tenant.headers)
    await client.post(f"/v1/orders/{cancelled['id']}/cancel", headers=tenant.headers)
    page = await client.get(path_of(paid["pay_url"]))
    assert_friendly(page, 200, "has been paid")
    assert "<form" not in page.text
    page = await client.get(path_of(cancelled["pay_url"]))
    assert_friendly(page, 200, "was cancelled")
    assert "<form" not in page.text
    unknown = f"/pay/{tenant.slug}/{'x' * 32}"
    assert_friendly(await client.get(unknown), 404, "Payment link not found")
    assert_friendly(await client.get(f"/pay/{tenant.slug}/short"), 404)
    assert_friendly(await client.post(f"{unknown}/checkout", data={"provider": "sandbox"}), 404)
    assert_friendly(await client.get(f"{unknown}/success"), 404)
    token = paid["pay_url"].rsplit("/", 1)[1]
    assert_friendly(await client.get(f"/pay/no-such-tenant/{token}"), 404,
                    "Payment link not found")
    # no providers configured: the page says so instead of offering a dead button
    await client.delete("/v1/providers/cash", headers=tenant.headers)
    lonely = await order(client, tenant)
    assert_friendly(await client.get(path_of(lonely["pay_url"])), 200,
                    "Online payment is not available")
    suspended = await client.patch(f"/v1/owner/tenants/{tenant.slug}", headers=owner_headers,
                                   json={"status": "suspended"})
    assert suspended.status_code == 200, suspended.text
    from owner.tenants.service import forget_cached_tenants

    forget_cached_tenants()
    assert_friendly(await client.get(path_of(lonely["pay_url"])), 403,
                    "Payments are unavailable")


async def test_pay_through_the_sandbox_page(client, make_tenant):
    tenant = await make_tenant()
    await configure(client, tenant)
    item = await product(client, tenant, price=2500, stock=3)
    made = await order(client, tenant, [{"product_id": item["id"], "quantity": 2}])
    pay = path_of(made["pay_url"])
    form = await client.get(pay)
    action = re.search(r'action="([^"]+)"', form.text).group(1)
    started = await client.post(action, data={"provider": "sandbox"})
    assert started.status_code == 303, started.text
    hosted = started.headers["location"]
    assert "/sandbox/checkout/pay_" in hosted
    # a double submit hands back the same hosted page
    assert (await client.post(action, data={"provider": "sandbox"})).headers["location"] == hosted
    checkout_page = await client.get(path_of(hosted))
    assert checkout_page.status_code == 200
    assert (await get_order(client, tenant, made["id"]))["payment_status"] == "pending"
    paid = await client.post(path_of(hosted), data={"card_number": SUCCESS})
    assert paid.status_code == 303
    back = paid.headers["location"]
    assert path_of(back).startswith(f"{pay}/success?")
    # no webhook has arrived yet: the page asks the provider and applies its answer
    result = await client.get(path_of(back))
    assert_friendly(result, 200, "Payment received")
    after = await get_order(client, tenant, made["id"])
    assert after["status"] == "paid" and after["payment_status"] == "paid"
    stock = (await client.get(f"/v1/products/{item['id']}", headers=tenant.headers)).json()
    assert stock["stock"] == 1 and stock["reserved"] == 0
    assert_friendly(await client.get(pay), 200, "has been paid")
    assert_friendly(await client.post(action, data={"provider": "sandbox"}), 409,
                    "already paid")


async def test_declined_card_and_cancel_on_the_hosted_page(client, make_tenant):
    tenant = await make_tenant()
    await configure(client, tenant)
    made = await order(client, tenant)
    pay = path_of(made["pay_url"])
    hosted = (await client.post(f"{pay}/checkout", data={})).headers["location"]
    declined = await client.post(path_of(hosted), data={"card_number": DECLINED})
    result = await client.get(path_of(declined.headers["location"]))
    assert_friendly(result, 200, "Payment failed", "declined")
    assert (await get_order(client, tenant, made["id"]))["status"] == "payment_failed"
    # try again: a new attempt, then give up on the hosted page
    retry = (await client.post(f"{pay}/checkout", data={"provider": "sandbox"}))
    assert retry.status_code == 303 and retry.headers["location"] != hosted
    gave_up = await client.post(f"{path_of(retry.headers['location'])}/cancel")
    assert gave_up.status_code == 303 and "/cancel?" in gave_up.headers["location"]
    page = await client.get(path_of(gave_up.headers["location"]))
    assert_friendly(page, 200, "Payment cancelled", "still open")
    after = await get_order(client, tenant, made["id"])
    assert after["status"] == "pending_payment" and after["payment_status"] == "not_paid"
    # the next checkout does not hand back the abandoned page
    third = await client.post(f"{pay}/checkout", data={"provider": "sandbox"})
    assert third.headers["location"] not in (hosted, retry.headers["location"])


async def test_checkout_form_errors_are_pages(client, make_tenant):
    tenant = await make_tenant()
    await configure(client, tenant)
    await configure(client, tenant, "cash", priority=500)
    made = await order(client, tenant)
    pay = path_of(made["pay_url"])
    bad = await client.post(f"{pay}/checkout", data={"provider": "stripe"})
    assert_friendly(bad, 422, "not available")
    desk = await client.post(f"{pay}/checkout", data={"provider": "cash"})
    assert_friendly(desk, 200, "How to pay", "Pay at the desk")
    payments = (await client.get(f"/v1/payments?order_id={made['id']}",
                                 headers=tenant.headers)).json()["data"]
    assert [p["provider"] for p in payments] == ["cash"]


async def test_pay_pages_are_rate_limited(app, make_tenant, client):
    from tenant.pages.controllers import RATE_LIMIT

    tenant = await make_tenant()
    made = await order(client, tenant)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 4444))
    async with httpx.AsyncClient(transport=transport, base_url="http://t.local") as visitor:
        statuses = [(await visitor.get(path_of(made["pay_url"]))).status_code
                    for _ in range(RATE_LIMIT[1] + 2)]
        limited = await visitor.get(path_of(made["pay_url"]))
    assert statuses[: RATE_LIMIT[1]] == [200] * RATE_LIMIT[1]
    assert_friendly(limited, 429, "Too many requests")
    # another visitor is not affected
    assert (await client.get(path_of(made["pay_url"]))).status_code == 200
