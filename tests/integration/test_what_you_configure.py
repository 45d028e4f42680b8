"""What a tenant configures is what they get (issue #11 §8), through HTTP: partial provider
updates, the sandbox's own webhook secret and key format, one usability rule for listing,
selection, orders and the payment page, quoted = charged fees, the orders' provider
filter, mark-paid without cash, gapless invoice numbers and the tax rate's unit."""

from __future__ import annotations

import asyncio
import re
import uuid
from urllib.parse import urlsplit

import pytest

from tests.integration.test_orders_support import (
    SANDBOX_KEY,
    assert_error,
    configure,
    gateway,  # noqa: F401 - fixture
    get_order,
    order,
    product,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("gateway")]

STRIPE = {"secret_key": "sk_live_x", "public_key": "pk_live_x", "webhook_secret": "whsec_x"}
#: Nothing listens on the discard port: a provider pointed there is unreachable.
DEAD_URL = "http://127.0.0.1:9/v1"


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def _config(client, tenant, code):  # noqa: ANN001, ANN202
    rows = (await client.get("/v1/providers", headers=tenant.headers)).json()["data"]
    return next(r for r in rows if r["provider"] == code)


async def _dead_provider(client, owner_headers) -> tuple[str, str]:  # noqa: ANN001
    """A catalog entry run by the sandbox implementation whose API cannot be reached."""
    code = f"dead_{uuid.uuid4().hex[:6]}"
    created = await client.post("/v1/owner/providers", headers=owner_headers, json={
        "code": code, "name": "Dead Pay", "handler_key": "sandbox", "priority": 5,
        "required_keys": ["secret_key"], "api_base_url": DEAD_URL,
        "sandbox_api_base_url": DEAD_URL})
    assert created.status_code == 201, created.text
    assert (await client.put(f"/v1/owner/providers/{code}/currencies/USD", json={},
                             headers=owner_headers)).status_code in (200, 201)
    return code, "Dead Pay"


# ----------------------------------------------------------------------------- PUT


async def test_put_keeps_omitted_fields_and_null_clears(client, make_tenant):
    tenant = await make_tenant()
    h = tenant.headers
    first = await client.put("/v1/providers/stripe", headers=h, json={
        **STRIPE, "environment": "production", "is_default": True, "currencies": ["USD"],
        "config": {"statement_descriptor": "CLINIC"}, "priority": 5})
    assert first.status_code == 200, first.text
    # the request: only the priority changes
    again = await client.put("/v1/providers/stripe", json={"priority": 30}, headers=h)
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["priority"] == 30 and body["environment"] == "production"
    assert body["is_default"] is True and body["currencies"] == ["USD"]
    assert body["config"] == {"statement_descriptor": "CLINIC"} and body["enabled"] is True
    assert body["has_secret_key"] and body["has_public_key"] and body["has_webhook_secret"]
    # an explicit null clears: currencies → all, config → {}, is_default → false
    cleared = await client.put("/v1/providers/stripe", headers=h,
                               json={"currencies": None, "config": None, "is_default": None})
    body = cleared.json()
    assert cleared.status_code == 200, cleared.text
    assert body["currencies"] == [] and body["config"] == {} and body["is_default"] is False
    assert body["environment"] == "production" and body["priority"] == 30
    # clearing a required secret of an enabled provider is refused and changes nothing
    assert_error(await client.put("/v1/providers/stripe", json={"webhook_secret": None},
                                  headers=h), 400)
    assert (await _config(client, tenant, "stripe"))["has_webhook_secret"] is True
    off = await client.put("/v1/providers/stripe", headers=h,
                           json={"webhook_secret": None, "enabled": False})
    assert off.status_code == 200 and off.json()["has_webhook_secret"] is False
    assert off.json()["webhook_secret_hint"] is None and off.json()["has_secret_key"] is True
    # a new configuration starts from the documented defaults
    cash = (await client.put("/v1/providers/cash", json={}, headers=h)).json()
    assert (cash["enabled"], cash["is_default"], cash["environment"], cash["currencies"],
            cash["priority"], cash["config"]) == (True, False, "sandbox", [], 100, {})
    schema = (await client.get("/schema/openapi.json")).text
    assert "keeps its stored value" in schema and "clears" in schema


async def test_sandbox_key_format_is_checked_on_save(client, make_tenant):
    tenant = await make_tenant()
    for bad in ("sk_live_abcdefgh", "sk_sandbox_short", "sk_sandbox_" + "a" * 121,
                "sk_sandbox_has-dash-1234"):
        error = assert_error(await client.put("/v1/providers/sandbox",
                                              json={"secret_key": bad},
                                              headers=tenant.headers), 422, "invalid_key_format")
        assert error["param"] == "secret_key" and "sk_sandbox_" in error["message"]
    assert (await client.get("/v1/providers", headers=tenant.headers)).json()["data"] == []
    ok = await client.put("/v1/providers/sandbox", json={"secret_key": "sk_sandbox_" + "a" * 8},
                          headers=tenant.headers)
    assert ok.status_code == 200, ok.text


async def test_sandbox_webhooks_use_the_configured_secret(app, client, make_tenant):
    from providers.sandbox import deliver_webhook, pending_deliveries
    from providers.sandbox.store import load_delivery

    tenant = await make_tenant()
    await configure(client, tenant, webhook_secret="whsec_my_own_endpoint_secret_42")
    made = await order(client, tenant)
    started = await client.post(f"/v1/orders/{made['id']}/checkout", json={},
                                headers=tenant.headers)
    assert started.status_code == 201, started.text
    hosted = started.json()["redirect_url"]
    assert (await client.post(path_of(hosted),
                              data={"card_number": "4242424242424242"})).status_code == 303
    mine = []
    for delivery_id in await pending_deliveries(older_than_seconds=-5):
        delivery = await load_delivery(delivery_id)
        if delivery is not None and delivery.url.endswith(f"/webhooks/{tenant.slug}/sandbox"):
            mine.append(delivery_id)
    assert len(mine) == 1
    # raises unless Paymesh answers 2xx: it verifies with the configured secret
    await deliver_webhook(mine[0], app.state.runtime.http)


# ----------------------------------------------------------------------------- one rule


async def test_listing_selection_and_orders_agree(client, make_tenant):
    tenant = await make_tenant()
    h = tenant.headers
    await configure(client, tenant, currencies=["USD"])
    listed = (await client.get("/v1/providers/available?currency=JPY", headers=h)).json()
    sandbox = next(p for p in listed["data"] if p["code"] == "sandbox")
    assert sandbox["configured"] is True and sandbox["enabled"] is True
    assert sandbox["usable"] is False and "JPY" in sandbox["unusable_reason"]
    assert_error(await client.get("/v1/providers/for-currency/JPY", headers=h), 422,
                 "no_provider_available")
    usd = (await client.get("/v1/providers/available?currency=USD", headers=h)).json()
    assert next(p for p in usd["data"] if p["code"] == "sandbox")["usable"] is True
    assert (await client.get("/v1/providers/for-currency/USD", headers=h)).status_code == 200
    # an order tells at once whether anything can take it
    yen = await order(client, tenant, currency="JPY")
    assert yen["payment_options"] == []
    dollars = await order(client, tenant)
    assert dollars["payment_options"] == ["sandbox"]
    await configure(client, tenant, "cash")
    assert (await get_order(client, tenant, yen["id"]))["payment_options"] == ["cash"]
    assert (await get_order(client, tenant, dollars["id"]))["payment_options"] == [
        "sandbox", "cash"]
    listing = (await client.get("/v1/orders", headers=h)).json()["data"]
    assert {o["id"]: o["payment_options"] for o in listing} == {
        yen["id"]: ["cash"], dollars["id"]: ["sandbox", "cash"]}
    await client.post(f"/v1/orders/{yen['id']}/cancel", headers=h)
    assert (await get_order(client, tenant, yen["id"]))["payment_options"] == []


async def test_a_failed_credential_test_takes_a_provider_out(client, make_tenant,
                                                             owner_headers):
    tenant = await make_tenant()
    h = tenant.headers
    dead, _ = await _dead_provider(client, owner_headers)
    await configure(client, tenant)
    await configure(client, tenant, dead, secret_key=SANDBOX_KEY, is_default=True)
    made = await order(client, tenant)
    assert made["payment_options"] == [dead, "sandbox"]
    tested = await client.post(f"/v1/providers/{dead}/test", headers=h)
    assert tested.status_code == 200 and tested.json()["ok"] is False
    listed = (await client.get("/v1/providers/available?currency=USD", headers=h)).json()
    row = next(p for p in listed["data"] if p["code"] == dead)
    assert row["usable"] is False and "credential test" in row["unusable_reason"]
    assert (await client.get("/v1/providers/for-currency/USD",
                             headers=h)).json()["provider"] == "sandbox"
    assert_error(await client.get(f"/v1/providers/for-currency/USD?provider={dead}",
                                  headers=h), 422, "provider_unavailable_for_currency")
    assert (await get_order(client, tenant, made["id"]))["payment_options"] == ["sandbox"]
    page = await client.get(path_of(made["pay_url"]))
    assert 'value="sandbox"' in page.text and f'value="{dead}"' not in page.text
    started = await client.post(f"/v1/orders/{made['id']}/checkout", json={}, headers=h)
    assert started.status_code == 201 and started.json()["payment"]["provider"] == "sandbox"
    # new keys: the old test result no longer applies
    fixed = await client.put(f"/v1/providers/{dead}", json={"secret_key": SANDBOX_KEY + "2"},
                             headers=h)
    assert fixed.status_code == 200 and fixed.json()["last_test_ok"] is None
    listed = (await client.get("/v1/providers/available?currency=USD", headers=h)).json()
    assert next(p for p in listed["data"] if p["code"] == dead)["usable"] is True


async def test_pay_page_never_swaps_the_customers_choice(client, make_tenant, owner_headers):
    tenant = await make_tenant()
    dead, dead_name = await _dead_provider(client, owner_headers)
    await configure(client, tenant)
    await configure(client, tenant, dead, secret_key=SANDBOX_KEY)
    made = await order(client, tenant)
    pay = path_of(made["pay_url"])
    assert f'value="{dead}"' in (await client.get(pay)).text
    chose = await client.post(f"{pay}/checkout", data={"provider": dead})
    assert chose.status_code == 503, chose.text
    assert chose.headers["content-type"].startswith("text/html")
    assert f"{dead_name} is unavailable right now" in chose.text
    assert 'value="sandbox"' in chose.text and f'value="{dead}"' not in chose.text
    attempts = (await client.get(f"/v1/payments?order_id={made['id']}",
                                 headers=tenant.headers)).json()["data"]
    assert [(a["provider"], a["status"]) for a in attempts] == [(dead, "failed")]
    # the customer picks another one themselves
    other = await client.post(f"{pay}/checkout", data={"provider": "sandbox"})
    assert other.status_code == 303 and "/sandbox/checkout/pay_" in other.headers["location"]


# ----------------------------------------------------------------------------- fees


async def test_quoted_fee_is_the_charged_fee(client, make_tenant):
    tenant = await make_tenant()
    await configure(client, tenant)
    item = [{"description": "Visit", "quantity": 1, "unit_amount": 123456}]
    made = await order(client, tenant, items=item)
    quote = (await client.get("/v1/providers/for-currency/USD?amount=123456",
                              headers=tenant.headers)).json()
    assert quote["fee"] == 3610  # 2.9 % + 30 ¢
    started = await client.post(f"/v1/orders/{made['id']}/checkout", json={},
                                headers=tenant.headers)
    hosted = started.json()["redirect_url"]
    back = (await client.post(path_of(hosted), data={"card_number": "4242424242424242"}))
    assert (await client.get(path_of(back.headers["location"]))).status_code == 200
    attempts = (await client.get(f"/v1/payments?order_id={made['id']}",
                                 headers=tenant.headers)).json()["data"]
    assert [(a["status"], a["fee_amount"]) for a in attempts] == [("succeeded", quote["fee"])]


# ----------------------------------------------------------------------------- orders


async def test_orders_filter_by_provider_and_mark_paid_needs_cash(client, make_tenant):
    tenant = await make_tenant()
    h = tenant.headers
    await configure(client, tenant)
    by_card, by_cash, untouched = (await order(client, tenant), await order(client, tenant),
                                   await order(client, tenant))
    assert (await client.post(f"/v1/orders/{by_card['id']}/checkout", json={},
                              headers=h)).status_code == 201
    assert_error(await client.post(f"/v1/orders/{by_cash['id']}/mark-paid", headers=h), 422,
                 "provider_not_configured")
    assert (await get_order(client, tenant, by_cash["id"]))["payment_status"] == "not_paid"
    await configure(client, tenant, "cash")
    assert (await client.post(f"/v1/orders/{by_cash['id']}/mark-paid",
                              headers=h)).status_code == 200

    async def ids(query: str) -> list[str]:
        response = await client.get(f"/v1/orders?{query}", headers=h)
        assert response.status_code == 200, response.text
        return [o["id"] for o in response.json()["data"]]

    assert await ids("provider=sandbox") == [by_card["id"]]
    assert await ids("provider=cash") == [by_cash["id"]]
    assert await ids("provider=stripe") == []
    assert set(await ids("")) == {by_card["id"], by_cash["id"], untouched["id"]}
    assert_error(await client.get(f"/v1/orders?provider={'x' * 40}", headers=h), 400)


async def test_invoice_numbers_have_no_gaps(client, make_tenant):
    tenant = await make_tenant()
    h = tenant.headers
    scarce = await product(client, tenant, price=700, stock=2)
    numbers: list[str] = []
    for round_ in range(4):
        numbers.append((await order(client, tenant))["number"])
        refused = await client.post("/v1/orders", headers=h, json={
            "customer_email": "pat@example.com", "currency": "USD",
            "items": [{"product_id": scarce["id"], "quantity": 5}]})
        assert_error(refused, 409)
        assert_error(await client.post("/v1/orders", headers=h, json={
            "customer_email": "pat@example.com", "currency": "USD",
            "items": [{"product_id": str(uuid.uuid4()), "quantity": 1}]}), 400)
        assert_error(await client.post("/v1/orders", headers=h, json={
            "customer_email": "pat@example.com", "currency": "USD", "coupon_code": "X",
            "items": [{"description": "x", "quantity": 1, "unit_amount": 1}]}), 422)
        if round_ == 1:  # takes the last units: later stock orders are refused too
            numbers.append((await order(client, tenant, [{"product_id": scarce["id"],
                                                           "quantity": 2}]))["number"])

    async def one(n: int) -> str:
        if n % 3 == 0:  # refused for stock, concurrently with the good ones
            response = await client.post("/v1/orders", headers=h, json={
                "customer_email": "pat@example.com", "currency": "USD",
                "items": [{"product_id": scarce["id"], "quantity": 1}]})
            assert response.status_code == 409, response.text
            return ""
        return (await order(client, tenant))["number"]

    numbers += [n for n in await asyncio.gather(*(one(n) for n in range(24))) if n]
    values = sorted(int(re.fullmatch(r"INV-(\d{6})", n).group(1)) for n in numbers)
    assert values == list(range(1, len(numbers) + 1)), numbers
    listed = (await client.get("/v1/orders?limit=100", headers=h)).json()["data"]
    assert sorted(o["number"] for o in listed) == sorted(numbers)


# ----------------------------------------------------------------------------- tax rate


async def test_tax_rate_is_a_documented_percent(client, make_tenant):
    tenant = await make_tenant()
    h = tenant.headers
    for bad in ("100", "-1", "250", "8.12345"):
        assert_error(await client.patch("/v1/settings", json={"tax_rate": bad}, headers=h),
                     400)
    assert (await client.get("/v1/settings", headers=h)).json()["tax_rate"] == "0"
    ok = await client.patch("/v1/settings", json={"tax_rate": "8.25"}, headers=h)
    assert ok.status_code == 200 and ok.json()["tax_rate"] == "8.25"
    schema = (await client.get("/schema/openapi.json")).text
    assert "Tax rate in percent" in schema and "0.0825" in schema


async def test_invoice_counter_migration_starts_after_the_issued_numbers(platform, client,
                                                                        make_tenant):
    from sqlalchemy import text

    from core import migrate
    from core.db import autocommit_connection, with_database

    tenant = await make_tenant()
    for _ in range(3):
        await order(client, tenant)
    url = with_database(platform["PAYMESH_DATABASE_URL"],
                        platform["PAYMESH_TENANT_DB_PREFIX"] + tenant.slug.replace("-", "_"))
    await migrate.downgrade(url, "tenant", "0005_ledger_reference_checks")
    async with autocommit_connection(url) as conn:
        assert (await conn.execute(text("SELECT nextval('order_number_seq')"))).scalar() == 4
        await conn.execute(text("SELECT setval('order_number_seq', 40)"))  # numbers lost
    await migrate.upgrade(url, "tenant")
    async with autocommit_connection(url) as conn:
        counter = (await conn.execute(text("SELECT last_number FROM invoice_counter"))).scalar()
    assert counter == 3  # the highest number issued, not the sequence's position
