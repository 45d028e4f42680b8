"""Shared helpers for the order, payment and ledger tests (this module holds no tests).

``gateway`` routes the app's outgoing HTTP for ``PAYMESH_PUBLIC_URL`` back into the app
in-process (the sandbox provider calls ``{public_url}/sandbox/api/v1``), while every
other URL still goes to the network — so an unreachable provider stays unreachable.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from tests.integration.test_owner_catalog import assert_error

__all__ = ["assert_error"]

SANDBOX_KEY = "sk_sandbox_orders_tests_key"
TEST_ACTOR = Actor.system("tests")


class RoutingTransport(httpx.AsyncBaseTransport):
    """``prefix`` → the ASGI app; anything else → the real network."""

    def __init__(self, app: Any, prefix: str) -> None:
        self.prefix = prefix
        self.app = httpx.ASGITransport(app=app, client=("127.0.0.1", 50001))
        self.network = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if str(request.url).startswith(self.prefix):
            return await self.app.handle_async_request(request)
        return await self.network.handle_async_request(request)

    async def aclose(self) -> None:
        await self.network.aclose()


@pytest_asyncio.fixture(scope="module")
async def gateway(app, client) -> AsyncIterator[None]:  # type: ignore[no-untyped-def]
    runtime = app.state.runtime
    original = runtime.http
    runtime.http = httpx.AsyncClient(
        transport=RoutingTransport(app, runtime.settings.public_url), timeout=30)
    try:
        yield
    finally:
        await runtime.http.aclose()
        runtime.http = original


@asynccontextmanager
async def tenant_db(slug: str) -> AsyncIterator[AsyncSession]:
    """A transaction on a tenant's database, as a worker would open it."""
    from core.runtime import get_runtime
    from owner.tenants.service import lookup

    runtime = get_runtime()
    tenant = await lookup(runtime, slug=slug)
    assert tenant is not None
    async with runtime.tenant_session(tenant.db_url) as session:
        yield session


async def configure(client, tenant, code: str = "sandbox", **body: Any) -> None:  # noqa: ANN001
    defaults: dict[str, dict[str, Any]] = {
        "sandbox": {"secret_key": SANDBOX_KEY},
        "cash": {},
        "paystack": {"public_key": "pk_test_x", "secret_key": "sk_test_paystack_x"},
    }
    response = await client.put(f"/v1/providers/{code}", json={**defaults.get(code, {}), **body},
                                headers=tenant.headers)
    assert response.status_code == 200, response.text


async def product(client, tenant, **body: Any) -> dict[str, Any]:  # noqa: ANN001
    data = {"name": "Widget", "kind": "physical", "price": 1000, "currency": "USD", **body}
    response = await client.post("/v1/products", json=data, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def order(client, tenant, items: list[dict[str, Any]] | None = None,  # noqa: ANN001
                currency: str = "USD", **body: Any) -> dict[str, Any]:
    data = {"customer_email": "pat@example.com", "currency": currency,
            "items": items or [{"description": "Consultation", "quantity": 1,
                                "unit_amount": 5000}], **body}
    response = await client.post("/v1/orders", json=data, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def checkout(client, tenant, order_id: str, **body: Any) -> httpx.Response:  # noqa: ANN001
    return await client.post(f"/v1/orders/{order_id}/checkout", json=body,
                             headers=tenant.headers)


async def get_order(client, tenant, order_id: str) -> dict[str, Any]:  # noqa: ANN001
    response = await client.get(f"/v1/orders/{order_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def succeed(slug: str, payment: dict[str, Any], **overrides: Any) -> bool:
    """What the webhook worker does for ``payment.succeeded``."""
    from tenant.payments import service as payments

    args = {"provider": payment["provider"],
            "provider_payment_id": payment["provider_payment_id"],
            "amount": payment["amount"], "currency": payment["currency"],
            "fee_amount": 30, "actor": TEST_ACTOR, **overrides}
    async with tenant_db(slug) as session:
        return await payments.mark_payment_succeeded(session, **args)


async def fail(slug: str, payment: dict[str, Any], code: str = "card_declined") -> bool:
    from tenant.payments import service as payments

    async with tenant_db(slug) as session:
        return await payments.mark_payment_failed(
            session, provider=payment["provider"],
            provider_payment_id=payment["provider_payment_id"], failure_code=code,
            failure_message="Your card was declined.", actor=TEST_ACTOR)


async def balances(client, tenant, currency: str | None = None) -> dict[str, int]:  # noqa: ANN001
    query = f"?currency={currency}" if currency else ""
    response = await client.get(f"/v1/ledger/balances{query}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert all(t["balanced"] for t in body["trial_balance"]), body
    return {f"{r['account']}/{r['currency']}": r["balance"] for r in body["data"]}


def new_key() -> str:
    return f"test-{uuid.uuid4()}"
