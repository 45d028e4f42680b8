"""Owner catalog API (O1, O2) through HTTP."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.asyncio


def assert_error(response, status: int, code: str | None = None) -> dict:  # noqa: ANN001
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"type", "code", "message", "param"}
    if code:
        assert error["code"] == code, error
    return error


async def test_seeded_catalog_lists_six_providers(client, owner_headers):
    response = await client.get("/v1/owner/providers", headers=owner_headers)
    assert response.status_code == 200
    codes = {p["code"] for p in response.json()["data"]}
    assert {"sandbox", "stripe", "paystack", "flutterwave", "bank_transfer", "cash"} <= codes
    stripe = await client.get("/v1/owner/providers/stripe", headers=owner_headers)
    usd = next(c for c in stripe.json()["currencies"] if c["currency"] == "USD")
    assert usd["fixed_fee"] == 30 and usd["fee_percent"] == "2.9"


async def test_create_update_and_currency(client, owner_headers):
    code = f"acme_{uuid.uuid4().hex[:6]}"
    body = {"code": code, "name": "Acme Pay", "handler_key": "sandbox",
            "config_schema": {"type": "object", "properties": {"x": {"type": "integer"}}},
            "required_keys": ["secret_key"], "priority": 70, "status": "beta"}
    created = await client.post("/v1/owner/providers", json=body, headers=owner_headers)
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "beta"
    dup = await client.post("/v1/owner/providers", json=body, headers=owner_headers)
    assert_error(dup, 409)
    patched = await client.patch(f"/v1/owner/providers/{code}", json={"status": "deprecated"},
                                 headers=owner_headers)
    assert patched.json()["status"] == "deprecated"
    put = await client.put(f"/v1/owner/providers/{code}/currencies/eur",
                           json={"fee_percent": "1.25", "fixed_fee": 10, "min_amount": 100,
                                 "max_amount": 500000, "is_recommended": True},
                           headers=owner_headers)
    assert put.status_code == 200, put.text
    assert put.json()["currency"] == "EUR" and put.json()["fee_percent"] == "1.25"
    again = await client.put(f"/v1/owner/providers/{code}/currencies/EUR",
                             json={"fee_percent": "2", "fixed_fee": 0}, headers=owner_headers)
    assert again.status_code == 200
    detail = await client.get(f"/v1/owner/providers/{code}", headers=owner_headers)
    assert [c["currency"] for c in detail.json()["currencies"]] == ["EUR"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"code": "Bad Code", "name": "x", "handler_key": "sandbox"}, "code"),
        ({"code": "okcode", "name": "x", "handler_key": "nope"}, "handler_key"),
        ({"code": "okcode", "name": "x", "handler_key": "sandbox",
          "config_schema": {"type": "no-such-type"}}, "config_schema"),
        ({"code": "okcode", "name": "x", "handler_key": "sandbox",
          "required_keys": ["password"]}, "required_keys"),
        ({"code": "okcode", "name": "x", "handler_key": "sandbox",
          "api_base_url": "ftp://x"}, "api_base_url"),
        ({"code": "okcode", "name": "x", "handler_key": "sandbox", "status": "weird"}, None),
        ({"code": "okcode", "name": "x", "handler_key": "sandbox", "unknown": 1}, None),
        ({"name": "x"}, None),
        ({"code": 5, "name": "x", "handler_key": "sandbox"}, None),
    ],
)
async def test_create_provider_bad_input(client, owner_headers, body, param):
    response = await client.post("/v1/owner/providers", json=body, headers=owner_headers)
    error = assert_error(response, 400)
    if param:
        assert error["param"] == param


@pytest.mark.parametrize(
    ("currency", "body"),
    [
        ("XXX1", {"fee_percent": "1"}),
        ("USD", {"fee_percent": "-1"}),
        ("USD", {"fee_percent": "100"}),
        ("USD", {"fixed_fee": -5}),
        ("USD", {"min_amount": 10, "max_amount": 5}),
        ("USD", {"fee_percent": "abc"}),
        ("USD", {"fixed_fee": 1.5}),
    ],
)
async def test_put_currency_bad_input(client, owner_headers, currency, body):
    response = await client.put(f"/v1/owner/providers/cash/currencies/{currency}", json=body,
                                headers=owner_headers)
    assert_error(response, 400)


async def test_unknown_provider_and_malformed_json(client, owner_headers):
    assert_error(await client.get("/v1/owner/providers/nope", headers=owner_headers), 404)
    response = await client.post("/v1/owner/providers", content=b"{not json",
                                 headers={**owner_headers, "Content-Type": "application/json"})
    assert_error(response, 400)


async def test_owner_endpoints_need_an_owner_key(client, make_tenant):
    tenant = await make_tenant()
    assert_error(await client.get("/v1/owner/providers"), 401)
    assert_error(await client.get("/v1/owner/providers",
                                  headers={"Authorization": "Bearer pm_own_nope"}), 401)
    assert_error(await client.get("/v1/owner/providers", headers=tenant.headers), 403)
    assert_error(await client.get("/v1/owner/tenants", headers=tenant.headers), 403)
