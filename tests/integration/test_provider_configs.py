"""Tenant provider configuration, availability, selection and credential tests (T1-T3)."""

from __future__ import annotations

import pytest

from core import circuit
from core.redis import get_redis
from tests.integration.test_owner_catalog import assert_error

pytestmark = pytest.mark.asyncio

BANK = {"account_name": "Clinic Ltd", "account_number": "12345678", "bank_name": "Test Bank"}


async def test_keys_are_masked_never_returned(client, make_tenant):
    tenant = await make_tenant()
    secret = "sk_sandbox_supersecretvalue9876"
    response = await client.put(
        "/v1/providers/sandbox",
        json={"secret_key": secret, "webhook_secret": "whsec_abcdefghijkl4321",
              "currencies": ["usd", "EUR"], "is_default": True, "priority": 5},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert secret not in response.text and "supersecret" not in response.text
    assert body["secret_key_hint"] == "sk_…9876" and body["has_secret_key"] is True
    assert body["currencies"] == ["USD", "EUR"] and body["is_default"] is True
    listed = await client.get("/v1/providers", headers=tenant.headers)
    assert secret not in listed.text
    # keys omitted on update are kept
    again = await client.put("/v1/providers/sandbox", json={"priority": 7},
                             headers=tenant.headers)
    assert again.json()["has_secret_key"] is True and again.json()["priority"] == 7
    trail = await client.get("/v1/audit-log?entity_type=provider_config&entity_id=sandbox",
                             headers=tenant.headers)
    entries = trail.json()["data"]
    assert [e["action"] for e in entries] == ["provider.updated", "provider.configured"]
    assert secret not in trail.text
    assert entries[0]["actor_key_id"] is not None


@pytest.mark.parametrize(
    ("code", "body", "status", "param"),
    [
        ("bank_transfer", {"webhook_secret": "k" * 12, "config": {"bank_name": "x"}}, 400,
         "config"),
        ("bank_transfer", {"webhook_secret": "k" * 12, "config": {**BANK, "extra": 1}}, 400,
         "config"),
        ("sandbox", {"secret_key": "sk_sandbox_x", "currencies": ["KRW"]}, 400, "currencies"),
        ("sandbox", {"secret_key": "sk_sandbox_x", "currencies": ["nope"]}, 400, "currencies"),
        ("sandbox", {}, 400, "secret_key"),
        ("sandbox", {"secret_key": "   "}, 400, "secret_key"),
        ("sandbox", {"secret_key": "sk_sandbox_x", "environment": "live"}, 400, None),
        ("sandbox", {"secret_key": "sk_sandbox_x", "surprise": 1}, 400, None),
        ("stripe", {"secret_key": "sk_test_1", "public_key": "pk_test_1",
                    "webhook_secret": "whsec_1", "config": {"capture_method": "later"}}, 400,
         "config.capture_method"),
        ("no_such_provider", {}, 404, None),
    ],
)
async def test_put_config_bad_input(client, make_tenant, code, body, status, param):
    tenant = await make_tenant()
    error = assert_error(await client.put(f"/v1/providers/{code}", json=body,
                                          headers=tenant.headers), status)
    if param:
        assert error["param"] == param
    assert (await client.get("/v1/providers", headers=tenant.headers)).json()["data"] == []


async def test_catalog_status_rules(client, owner_headers, make_tenant):
    import uuid

    code = f"old_{uuid.uuid4().hex[:6]}"
    await client.post("/v1/owner/providers", headers=owner_headers,
                      json={"code": code, "name": "Old", "handler_key": "cash"})
    await client.put(f"/v1/owner/providers/{code}/currencies/USD", json={},
                     headers=owner_headers)
    early, late = await make_tenant(), await make_tenant()
    assert (await client.put(f"/v1/providers/{code}", json={},
                             headers=early.headers)).status_code == 200
    await client.patch(f"/v1/owner/providers/{code}", json={"status": "deprecated"},
                       headers=owner_headers)
    assert_error(await client.put(f"/v1/providers/{code}", json={}, headers=late.headers), 409,
                 "provider_deprecated")
    kept = await client.put(f"/v1/providers/{code}", json={"priority": 1}, headers=early.headers)
    assert kept.status_code == 200
    offered_late = await client.get("/v1/providers/available?currency=USD", headers=late.headers)
    assert code not in {p["code"] for p in offered_late.json()["data"]}
    offered_early = await client.get("/v1/providers/available?currency=USD",
                                     headers=early.headers)
    assert code in {p["code"] for p in offered_early.json()["data"]}
    await client.patch(f"/v1/owner/providers/{code}", json={"status": "inactive"},
                       headers=owner_headers)
    assert_error(await client.put(f"/v1/providers/{code}", json={"enabled": True},
                                  headers=early.headers), 409, "provider_inactive")
    disabled = await client.put(f"/v1/providers/{code}", json={"enabled": False},
                                headers=early.headers)
    assert disabled.status_code == 200


async def test_available_lists_catalog_with_flags(client, make_tenant):
    tenant = await make_tenant()
    await client.put("/v1/providers/cash", json={"enabled": False}, headers=tenant.headers)
    response = await client.get("/v1/providers/available?currency=jpy", headers=tenant.headers)
    rows = {p["code"]: p for p in response.json()["data"]}
    assert {"sandbox", "stripe", "cash"} <= set(rows) and "paystack" not in rows
    assert rows["cash"]["configured"] is True and rows["cash"]["enabled"] is False
    assert rows["stripe"]["configured"] is False
    assert_error(await client.get("/v1/providers/available", headers=tenant.headers), 400)
    assert_error(await client.get("/v1/providers/available?currency=ABCD",
                                  headers=tenant.headers), 400)


async def _configure(client, tenant, code, **body):  # noqa: ANN001, ANN003
    defaults = {"sandbox": {"secret_key": "sk_sandbox_test_key"},
                "stripe": {"secret_key": "sk_test_x", "public_key": "pk_test_pub",
                           "webhook_secret": "whsec_x"},
                "bank_transfer": {"webhook_secret": "feed-key-123", "config": BANK},
                "cash": {}}
    response = await client.put(f"/v1/providers/{code}", json={**defaults[code], **body},
                                headers=tenant.headers)
    assert response.status_code == 200, response.text


async def test_selection_order(client, make_tenant):
    tenant = await make_tenant()
    h = tenant.headers
    for code in ("sandbox", "stripe", "bank_transfer", "cash"):
        await _configure(client, tenant, code)

    async def pick(currency: str, amount: int | None = None, **q: str) -> dict:
        params = {**({"amount": amount} if amount is not None else {}), **q}
        response = await client.get(f"/v1/providers/for-currency/{currency}", params=params,
                                    headers=h)
        return response

    # equal tenant priority → catalog priority: sandbox (10) before stripe (20)
    first = (await pick("USD", 1000)).json()
    assert first["provider"] == "sandbox" and first["fee"] == 29 + 30
    assert first["fallbacks"][:2] == ["stripe", "bank_transfer"]
    # tenant priority beats catalog priority
    await _configure(client, tenant, "cash", priority=1)
    assert (await pick("USD", 1000)).json()["provider"] == "cash"
    # the tenant default beats priority
    await _configure(client, tenant, "stripe", is_default=True)
    chosen = (await pick("USD", 1000)).json()
    assert chosen["provider"] == "stripe"
    assert "pk_test_pub" in str(chosen["public_config"])
    assert "sk_test_x" not in str(chosen) and "whsec_x" not in str(chosen)
    # an explicit choice beats everything; one that cannot take the amount is a 422
    assert (await pick("USD", 1000, provider="sandbox")).json()["provider"] == "sandbox"
    assert_error(await pick("USD", 10, provider="stripe"), 422)
    # below stripe's minimum (50) it is skipped
    assert (await pick("USD", 40)).json()["provider"] == "cash"
    # currency restrictions on the tenant config are honoured
    await _configure(client, tenant, "cash", priority=1, currencies=["EUR"])
    assert (await pick("USD", 1000)).json()["provider"] == "stripe"
    # an open circuit takes a provider out until its cool-down passes
    redis = get_redis()
    for _ in range(circuit.THRESHOLD):
        await circuit.record_failure(redis, tenant.slug, "stripe")
    assert (await pick("USD", 1000)).json()["provider"] == "sandbox"
    await circuit.record_success(redis, tenant.slug, "stripe")
    assert (await pick("USD", 1000)).json()["provider"] == "stripe"
    assert_error(await pick("KRWX", 1000), 400)
    assert_error(await pick("KRW", 1000), 422, "no_provider_available")
    assert_error(await pick("USD", -5), 400)
    assert_error(await pick("NGN", 1000), 422, "no_provider_available")


async def test_lowest_fee_breaks_ties(client, owner_headers, make_tenant):
    import uuid

    tenant = await make_tenant()
    codes = []
    for fee in ("3.0", "1.0"):
        code = f"fee_{uuid.uuid4().hex[:6]}"
        codes.append(code)
        await client.post("/v1/owner/providers", headers=owner_headers,
                          json={"code": code, "name": code, "handler_key": "cash",
                                "priority": 500})
        await client.put(f"/v1/owner/providers/{code}/currencies/GBP",
                         json={"fee_percent": fee}, headers=owner_headers)
    for code in codes:
        assert (await client.put(f"/v1/providers/{code}", json={},
                                 headers=tenant.headers)).status_code == 200
    chosen = await client.get("/v1/providers/for-currency/GBP?amount=10000",
                              headers=tenant.headers)
    assert chosen.json()["provider"] == codes[1] and chosen.json()["fee"] == 100


async def test_credential_test_is_recorded(client, make_tenant):
    tenant = await make_tenant()
    await _configure(client, tenant, "cash")
    result = await client.post("/v1/providers/cash/test", headers=tenant.headers)
    assert result.status_code == 200 and result.json()["ok"] is True
    listed = (await client.get("/v1/providers", headers=tenant.headers)).json()["data"][0]
    assert listed["last_tested_at"] is not None and listed["last_test_ok"] is True
    assert_error(await client.post("/v1/providers/stripe/test", headers=tenant.headers), 404)


async def test_delete_config(client, make_tenant):
    tenant = await make_tenant()
    await _configure(client, tenant, "cash")
    assert (await client.delete("/v1/providers/cash", headers=tenant.headers)).status_code == 204
    assert_error(await client.delete("/v1/providers/cash", headers=tenant.headers), 404)


async def test_secrets_never_reach_the_logs(client, make_tenant, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    tenant = await make_tenant()
    secret = "sk_sandbox_log_canary_5566778899"
    await client.put("/v1/providers/sandbox", json={"secret_key": secret}, headers=tenant.headers)
    await client.post("/v1/providers/sandbox/test", headers=tenant.headers)
    await client.get("/v1/providers/for-currency/USD?amount=500", headers=tenant.headers)
    assert caplog.records, "the calls above should have logged something"
    assert all(secret not in record.getMessage() for record in caplog.records)
    assert secret not in caplog.text
