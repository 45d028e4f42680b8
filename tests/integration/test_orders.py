"""Orders (T5) and settings (T20) through HTTP: totals, currencies, lists, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.test_orders_support import assert_error, order, product

pytestmark = pytest.mark.asyncio


async def set_tax(client, tenant, rate: str) -> None:  # noqa: ANN001
    response = await client.patch("/v1/settings", json={"tax_rate": rate}, headers=tenant.headers)
    assert response.status_code == 200, response.text


async def test_settings_defaults_and_changes(client, make_tenant):
    tenant = await make_tenant()
    h = tenant.headers
    defaults = (await client.get("/v1/settings", headers=h)).json()
    assert defaults["reservation_ttl_minutes"] == 30
    assert defaults["unpaid_auto_cancel_hours"] == 24 and defaults["tax_rate"] == "0"
    changed = await client.patch("/v1/settings", json={"tax_rate": "8.25",
                                                       "reservation_ttl_minutes": 15}, headers=h)
    assert changed.status_code == 200, changed.text
    assert changed.json()["tax_rate"] == "8.25" and changed.json()["reservation_ttl_minutes"] == 15
    again = (await client.get("/v1/settings", headers=h)).json()
    assert again["tax_rate"] == "8.25" and again["unpaid_auto_cancel_hours"] == 24
    for bad in ({"tax_rate": "100"}, {"tax_rate": "-1"}, {"tax_rate": "1.00001"},
                {"tax_rate": "NaN"}, {"tax_rate": "abc"}, {"reservation_ttl_minutes": 0},
                {"unpaid_auto_cancel_hours": 10_000}, {"platform": 1}):
        assert_error(await client.patch("/v1/settings", json=bad, headers=h), 400)
    assert (await client.get("/v1/settings", headers=h)).json() == again
    trail = (await client.get("/v1/audit-log?entity_type=settings", headers=h)).json()["data"]
    assert [e["action"] for e in trail] == ["settings.updated"]


@pytest.mark.parametrize(
    ("currency", "rate", "lines", "expected"),
    [
        # JPY has no minor unit: ¥1,234 × 3 = ¥3,702; 10 % tax = 370.2 → ¥370
        ("JPY", "10", [(1234, 3)], {"subtotal": 3702, "tax": 370, "total": 4072}),
        # USD: $19.99 × 3 = $59.97; 8.25 % = 494.7525 cents → 495
        ("USD", "8.25", [(1999, 3)], {"subtotal": 5997, "tax": 495, "total": 6492}),
        # KWD has three decimals: KD 1.255 × 2 + KD 0.125 = 2.635; 5 % = 131.75 fils → 132
        ("KWD", "5", [(1255, 2), (125, 1)], {"subtotal": 2635, "tax": 132, "total": 2767}),
        # half a minor unit rounds away from zero: 5 × 10 % = 0.5 → 1
        ("USD", "10", [(5, 1)], {"subtotal": 5, "tax": 1, "total": 6}),
        ("EUR", "0", [(100, 7)], {"subtotal": 700, "tax": 0, "total": 700}),
    ],
)
async def test_totals_in_minor_units(client, make_tenant, currency, rate, lines, expected):
    tenant = await make_tenant(currency=currency)
    await set_tax(client, tenant, rate)
    items = []
    for unit, qty in lines:
        made = await product(client, tenant, kind="service", price=unit, currency=currency)
        items.append({"product_id": made["id"], "quantity": qty})
    created = await order(client, tenant, items, currency=currency)
    for name, value in expected.items():
        assert created[name] == value, (name, created)
    assert created["discount"] == 0 and created["original_amount"] == expected["total"]
    assert created["currency"] == currency and created["tax_rate"] == rate
    assert created["status"] == "pending_payment" and created["payment_status"] == "not_paid"
    assert sum(i["amount"] for i in created["items"]) == created["subtotal"]


async def test_order_shape_number_and_pay_url(client, make_tenant):
    tenant = await make_tenant()
    physical = await product(client, tenant, name="Crutches", price=4500, stock=3)
    created = await order(client, tenant, [
        {"product_id": physical["id"], "quantity": 2},
        {"product_id": physical["id"], "quantity": 1, "unit_amount": 4000,
         "description": "Spare pair (discounted)"},
        {"description": "Fitting", "quantity": 1, "unit_amount": 1500},
    ], metadata={"visit": "42"})
    assert created["number"].startswith("INV-")
    assert created["fulfillment"] == "physical"
    assert created["subtotal"] == 9000 + 4000 + 1500 == created["total"]
    assert [i["description"] for i in created["items"]] == [
        "Crutches", "Spare pair (discounted)", "Fitting"]
    assert [i["kind"] for i in created["items"]] == ["physical", "physical", "service"]
    token = created["pay_url"].rsplit("/", 1)[1]
    assert created["pay_url"].endswith(f"/pay/{tenant.slug}/{token}") and len(token) >= 32
    assert created["metadata"] == {"visit": "42"}
    assert created["allowed_transitions"] == ["cancelled"]
    second = await order(client, tenant)
    assert second["number"] != created["number"]
    assert second["pay_url"] != created["pay_url"] and second["fulfillment"] == "direct"
    read = await client.get(f"/v1/orders/{created['id']}", headers=tenant.headers)
    assert read.status_code == 200 and read.json() == created
    trail = (await client.get(f"/v1/audit-log?entity_type=order&entity_id={created['id']}",
                              headers=tenant.headers)).json()["data"]
    assert [e["action"] for e in trail] == ["order.created"]


async def test_list_filters_and_pagination(client, make_tenant):
    tenant = await make_tenant()
    made = [await order(client, tenant) for _ in range(3)]
    cancelled = await client.post(f"/v1/orders/{made[0]['id']}/cancel", headers=tenant.headers)
    assert cancelled.status_code == 200
    h = tenant.headers
    page1 = (await client.get("/v1/orders?limit=2", headers=h)).json()
    assert len(page1["data"]) == 2 and page1["has_more"] is True and page1["page"] == 1
    page2 = (await client.get("/v1/orders?limit=2&page=2", headers=h)).json()
    assert len(page2["data"]) == 1 and page2["has_more"] is False
    ids = {o["id"] for o in page1["data"] + page2["data"]}
    assert ids == {o["id"] for o in made}
    only = (await client.get("/v1/orders?status=cancelled", headers=h)).json()["data"]
    assert [o["id"] for o in only] == [made[0]["id"]]
    unpaid = (await client.get("/v1/orders?payment_status=not_paid", headers=h)).json()["data"]
    assert len(unpaid) == 3
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    later = await client.get("/v1/orders", params={"created_from": future}, headers=h)
    assert later.json()["data"] == []
    window = await client.get("/v1/orders", params={"created_from": past, "created_to": future},
                              headers=h)
    assert len(window.json()["data"]) == 3
    for bad in ("status=nope", "payment_status=nope", "limit=0", "limit=101", "page=0",
                "created_from=yesterday"):
        assert_error(await client.get(f"/v1/orders?{bad}", headers=h), 400)


async def test_orders_are_isolated_between_tenants(client, make_tenant):
    mine, theirs = await make_tenant(), await make_tenant()
    created = await order(client, mine)
    assert_error(await client.get(f"/v1/orders/{created['id']}", headers=theirs.headers), 404)
    assert_error(await client.post(f"/v1/orders/{created['id']}/cancel",
                                   headers=theirs.headers), 404)


@pytest.mark.parametrize(
    ("change", "status", "code", "param"),
    [
        ({"currency": "XYZ"}, 400, None, "currency"),
        ({"customer_email": "not-an-email"}, 400, None, None),
        ({"items": []}, 400, None, None),
        ({"items": [{"quantity": 1, "unit_amount": 100}]}, 400, None, "items[0].description"),
        ({"items": [{"quantity": 1, "description": "x"}]}, 400, None, "items[0].unit_amount"),
        ({"items": [{"quantity": 0, "description": "x", "unit_amount": 1}]}, 400, None, None),
        ({"items": [{"quantity": 1, "description": "x", "unit_amount": -1}]}, 400, None, None),
        ({"items": [{"quantity": 1, "description": "x", "unit_amount": 1.5}]}, 400, None, None),
        ({"items": [{"quantity": 1, "product_id": "00000000-0000-0000-0000-000000000001"}]},
         400, "unknown_product", "items[0].product_id"),
        ({"items": [{"quantity": 1, "product_id": "not-a-uuid"}]}, 400, None, None),
        ({"coupon_code": "SAVE10"}, 422, "coupon_invalid", "coupon_code"),  # no such coupon
        ({"referral_code": "FRIEND"}, 422, "referral_code_invalid", "referral_code"),
        ({"surprise": True}, 400, None, None),
        ({"metadata": {"k": 1}}, 400, None, None),
    ],
)
async def test_bad_order_input(client, make_tenant, change, status, code, param):
    tenant = await make_tenant()
    body = {"customer_email": "pat@example.com", "currency": "USD",
            "items": [{"description": "Consultation", "quantity": 1, "unit_amount": 5000}],
            **change}
    error = assert_error(await client.post("/v1/orders", json=body, headers=tenant.headers),
                         status, code)
    if param:
        assert error["param"] == param
    assert (await client.get("/v1/orders", headers=tenant.headers)).json()["data"] == []


async def test_product_rules_on_orders(client, make_tenant):
    tenant = await make_tenant()
    euro = await product(client, tenant, currency="EUR", stock=5)
    retired = await product(client, tenant, active=False)
    error = assert_error(await client.post("/v1/orders", headers=tenant.headers, json={
        "customer_email": "a@b.co", "currency": "USD",
        "items": [{"description": "ok", "quantity": 1, "unit_amount": 5},
                  {"product_id": euro["id"], "quantity": 1}]}), 400, "currency_mismatch")
    assert error["param"] == "items[1].product_id"
    assert_error(await client.post("/v1/orders", headers=tenant.headers, json={
        "customer_email": "a@b.co", "currency": "USD",
        "items": [{"product_id": retired["id"], "quantity": 1}]}), 400, "product_inactive")
    assert (await client.get("/v1/orders", headers=tenant.headers)).json()["data"] == []
    # the refused order left the stock alone
    fresh = (await client.get(f"/v1/products/{euro['id']}", headers=tenant.headers)).json()
    assert fresh["reserved"] == 0


async def test_tax_change_does_not_rewrite_existing_orders(client, make_tenant):
    tenant = await make_tenant()
    await set_tax(client, tenant, "10")
    before = await order(client, tenant)
    await set_tax(client, tenant, "20")
    after = await order(client, tenant)
    assert before["tax"] == 500 and after["tax"] == 1000
    assert (await client.get(f"/v1/orders/{before['id']}",
                             headers=tenant.headers)).json()["tax"] == 500
