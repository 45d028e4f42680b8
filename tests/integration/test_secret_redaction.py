"""Secrets are never echoed (issue 11, section 7).

A provider (or a proxy in front of it) that quotes the request's secret key in its error
body must not get that key into an API response, a tenant table or a log line. The
double below answers every Paystack call with a 400 whose message contains the tenant's
secret key (a value with no key-like shape, so only the by-value masking can catch it)
and a key-shaped string that is nobody's (caught by the pattern masking).
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.e2e.provider_fakes import (
    catalog_pointed_at,
    configure,
    create_order,
    fake_base_url,
    routed_http,
)

pytestmark = pytest.mark.asyncio

SECRET = f"Echo-{uuid.uuid4().hex[:12]}-Me"  # no sk_/key shape: masked by value only
STRANGER = f"sk_live_{uuid.uuid4().hex}"  # key-shaped: masked by pattern
WEBHOOK_SECRET = f"hook-{uuid.uuid4().hex[:10]}"


def echoing_paystack(request: httpx.Request) -> httpx.Response:
    """Every call refused with a message that quotes the credentials it was sent."""
    auth = request.headers.get("authorization", "")
    return httpx.Response(400, json={
        "status": False,
        "message": f"Invalid key: {auth} (also tried {STRANGER}, webhook {WEBHOOK_SECRET})",
    })


async def _tenant_text(slug: str) -> str:
    """Every text/json value of every table of the tenant's database, as one string."""
    from core.runtime import get_runtime
    from owner.tenants.service import lookup

    runtime = get_runtime()
    context = await lookup(runtime, slug=slug)
    assert context is not None
    found: list[str] = []
    async with runtime.tenant_session(context.db_url) as session:
        columns = (await session.execute(text(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND data_type IN "
            "('text', 'character varying', 'json', 'jsonb', 'character')"))).all()
        assert columns
        for table, column in columns:
            values = await session.scalars(text(
                f'SELECT "{column}"::text FROM "{table}" WHERE "{column}" IS NOT NULL'))
            found.extend(values)
    return "\n".join(found)


async def test_a_provider_that_echoes_the_key_leaks_it_nowhere(
        app: Any, client: httpx.AsyncClient, make_tenant: Any, owner_headers: dict[str, str],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tenant = await make_tenant("echo", currency="NGN")
    base = fake_base_url()
    responses: list[str] = []

    def keep(response: httpx.Response) -> httpx.Response:
        responses.append(response.text)
        return response

    async with routed_http(app) as routes, \
            catalog_pointed_at(client, owner_headers, "paystack", base):
        routes.add(base, echoing_paystack)
        await configure(client, tenant, "paystack", {
            "public_key": "pk_test_echo", "secret_key": SECRET,
            "webhook_secret": WEBHOOK_SECRET})
        order = await create_order(client, tenant, 150_000, "NGN", "Echo test")

        checkout = keep(await client.post(
            f"/v1/orders/{order['id']}/checkout", json={"provider": "paystack"},
            headers={**tenant.headers, "Idempotency-Key": uuid.uuid4().hex}))
        assert checkout.status_code == 422, checkout.text
        error = checkout.json()["error"]
        assert error["param"] == "provider" and "[redacted]" in error["message"], error

        page_path = "/pay/" + order["pay_url"].split("/pay/", 1)[1]
        keep(await client.post(f"{page_path}/checkout", data={"provider": "paystack"}))

        tested = keep(await client.post("/v1/providers/paystack/test", headers=tenant.headers))
        assert tested.status_code == 200, tested.text
        assert tested.json()["ok"] is False
        assert "[redacted]" in tested.json()["message"], tested.text

    for path in ("/v1/payments", f"/v1/payments?order_id={order['id']}",
                 f"/v1/orders/{order['id']}", "/v1/orders", "/v1/providers",
                 "/v1/audit-log?limit=100", "/v1/webhook-events"):
        read = keep(await client.get(path, headers=tenant.headers))
        assert read.status_code == 200, (path, read.text)
    payments = json.loads(responses[-7])["data"]
    assert payments and all(p["status"] == "failed" for p in payments), payments
    assert any("[redacted]" in (p["failure_message"] or "") for p in payments), payments

    stored = await _tenant_text(tenant.slug)
    logged = "\n".join(record.getMessage() + (record.exc_text or "")
                       for record in caplog.records)
    for secret in (SECRET, STRANGER, WEBHOOK_SECRET):
        for where, seen in (("API responses", "\n".join(responses)),
                            ("tenant tables", stored), ("logs", logged)):
            assert secret not in seen, f"{secret} leaked into {where}"
    # the provider's own words survive, minus the secrets
    assert "Invalid key" in stored
