"""Products (T4) through HTTP: create, list, read, change; bad input is a 4xx."""

from __future__ import annotations

import pytest

from tests.integration.test_orders_support import assert_error, new_key, product

pytestmark = pytest.mark.asyncio


async def test_create_list_read_change(client, make_tenant):
    tenant = await make_tenant()
    created = await product(client, tenant, name="Bandage", price=250, currency="usd", stock=7,
                            metadata={"sku": "B-1"})
    assert created["currency"] == "USD" and created["stock"] == 7
    assert created["reserved"] == 0 and created["available"] == 7
    service = await product(client, tenant, name="Checkup", kind="service", price=9000)
    assert service["stock"] is None and service["available"] is None
    await product(client, tenant, name="E-book", kind="digital", price=500, currency="EUR")

    listed = (await client.get("/v1/products?limit=2", headers=tenant.headers)).json()
    assert listed["page"] == 1 and listed["limit"] == 2 and listed["has_more"] is True
    assert len(listed["data"]) == 2
    page2 = (await client.get("/v1/products?limit=2&page=2", headers=tenant.headers)).json()
    assert len(page2["data"]) == 1 and page2["has_more"] is False
    kinds = (await client.get("/v1/products?kind=service", headers=tenant.headers)).json()
    assert [p["id"] for p in kinds["data"]] == [service["id"]]
    eur = (await client.get("/v1/products?currency=eur", headers=tenant.headers)).json()
    assert [p["name"] for p in eur["data"]] == ["E-book"]

    read = await client.get(f"/v1/products/{created['id']}", headers=tenant.headers)
    assert read.status_code == 200 and read.json()["name"] == "Bandage"
    changed = await client.patch(f"/v1/products/{created['id']}",
                                 json={"stock": 3, "price": 300, "active": False},
                                 headers=tenant.headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["stock"] == 3 and changed.json()["active"] is False
    trail = (await client.get(f"/v1/audit-log?entity_type=product&entity_id={created['id']}",
                              headers=tenant.headers)).json()["data"]
    assert [e["action"] for e in trail] == ["product.updated", "product.created"]


async def test_other_tenants_products_are_invisible(client, make_tenant):
    mine, theirs = await make_tenant(), await make_tenant()
    created = await product(client, mine)
    assert_error(await client.get(f"/v1/products/{created['id']}", headers=theirs.headers), 404)
    assert (await client.get("/v1/products", headers=theirs.headers)).json()["data"] == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "x", "kind": "physical", "price": 1, "currency": "ABC"}, "currency"),
        ({"name": "x", "kind": "gadget", "price": 1, "currency": "USD"}, None),
        ({"name": "x", "kind": "physical", "price": -1, "currency": "USD"}, None),
        ({"name": "x", "kind": "physical", "price": 1.5, "currency": "USD"}, None),
        ({"name": "", "kind": "physical", "price": 1, "currency": "USD"}, None),
        ({"name": "x", "kind": "service", "price": 1, "currency": "USD", "stock": 3}, "stock"),
        ({"name": "x", "kind": "physical", "price": 1, "currency": "USD", "stock": -3}, None),
        ({"name": "x", "kind": "physical", "price": 1, "currency": "USD", "extra": 1}, None),
        ({"kind": "physical", "price": 1, "currency": "USD"}, None),
    ],
)
async def test_bad_product_input(client, make_tenant, body, param):
    tenant = await make_tenant()
    error = assert_error(await client.post("/v1/products", json=body, headers=tenant.headers),
                         400)
    if param:
        assert error["param"] == param
    assert (await client.get("/v1/products", headers=tenant.headers)).json()["data"] == []


async def test_bad_list_and_patch_input(client, make_tenant):
    tenant = await make_tenant()
    created = await product(client, tenant, stock=2)
    h = tenant.headers
    assert_error(await client.get("/v1/products?limit=101", headers=h), 400)
    assert_error(await client.get("/v1/products?page=0", headers=h), 400)
    assert_error(await client.get("/v1/products?kind=gadget", headers=h), 400)
    assert_error(await client.get("/v1/products/not-a-uuid", headers=h), 404)
    assert_error(await client.patch(f"/v1/products/{created['id']}", json={"stock": -1},
                                    headers=h), 400)
    assert_error(await client.patch(f"/v1/products/{created['id']}", json={"currency": "EUR"},
                                    headers=h), 400)
    service = await product(client, tenant, kind="service")
    assert_error(await client.patch(f"/v1/products/{service['id']}", json={"stock": 5},
                                    headers=h), 400)
    unchanged = (await client.get(f"/v1/products/{created['id']}", headers=h)).json()
    assert unchanged["stock"] == 2 and unchanged["currency"] == "USD"


async def test_create_is_idempotent(client, make_tenant):
    tenant = await make_tenant()
    key = new_key()
    body = {"name": "Gauze", "kind": "physical", "price": 120, "currency": "USD"}
    headers = {**tenant.headers, "Idempotency-Key": key}
    first = await client.post("/v1/products", json=body, headers=headers)
    again = await client.post("/v1/products", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.json() == first.json()
    assert len((await client.get("/v1/products", headers=tenant.headers)).json()["data"]) == 1
