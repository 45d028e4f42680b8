"""Plumbing for the provider end-to-end tests (this module holds no tests).

* :class:`FakeRoutes` / :func:`routed_http`: the in-process app's shared HTTP client is
  swapped for one whose transport hands each registered base URL to an in-process
  documented-payload fake (``tests/providers``) and refuses every other URL, so a test
  never reaches the network, and a provider that calls somewhere unexpected fails loudly.
  The base URLs are free loopback ports: even a request that slipped past the routing
  would only meet a closed local port.
* :func:`catalog_pointed_at`: the owner points a catalog provider's
  ``sandbox_api_base_url`` at a test double (``PATCH /v1/owner/providers/{code}``), and
  the previous value is put back afterwards, whatever happened in between.
* Small HTTP helpers shared by the tests: order + checkout, inbox reads, in-process event
  processing (what the worker's actor does), ledger checks.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from core.embedded import free_port


def fake_base_url(path: str = "") -> str:
    """A loopback base URL nobody listens on, used only as a routing key."""
    return f"http://127.0.0.1:{free_port()}{path}"


class FakeRoutes(httpx.AsyncBaseTransport):
    """Base URL → in-process handler (sync or async ``request -> response``)."""

    def __init__(self) -> None:
        self.routes: dict[str, httpx.MockTransport] = {}
        self.refused: list[str] = []

    def add(self, base_url: str, handler: Callable[[httpx.Request], Any]) -> None:
        self.routes[base_url.rstrip("/")] = httpx.MockTransport(handler)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        for base, transport in self.routes.items():
            if url == base or url.startswith(f"{base}/") or url.startswith(f"{base}?"):
                return await transport.handle_async_request(request)
        self.refused.append(url)
        raise httpx.ConnectError(f"not routed in this test: {request.method} {url}",
                                 request=request)


@asynccontextmanager
async def routed_http(app: Any) -> AsyncIterator[FakeRoutes]:
    """Swap ``app.state.runtime.http`` (what providers are built with) for the fakes."""
    runtime = app.state.runtime
    routes = FakeRoutes()
    original = runtime.http
    runtime.http = httpx.AsyncClient(transport=routes, timeout=30)
    try:
        yield routes
    finally:
        await runtime.http.aclose()
        runtime.http = original


@asynccontextmanager
async def catalog_pointed_at(client: httpx.AsyncClient, owner_headers: dict[str, str],
                             code: str, url: str) -> AsyncIterator[None]:
    """The catalog's sandbox API base for ``code`` is ``url`` inside the block."""
    before = await client.get(f"/v1/owner/providers/{code}", headers=owner_headers)
    assert before.status_code == 200, before.text
    saved = before.json()["sandbox_api_base_url"]
    changed = await client.patch(f"/v1/owner/providers/{code}", headers=owner_headers,
                                 json={"sandbox_api_base_url": url})
    assert changed.status_code == 200, changed.text
    assert changed.json()["sandbox_api_base_url"] == url
    try:
        yield
    finally:
        restored = await client.patch(f"/v1/owner/providers/{code}", headers=owner_headers,
                                      json={"sandbox_api_base_url": saved})
        assert restored.status_code == 200, restored.text


# ----------------------------------------------------------------------------- API steps


async def configure(client: httpx.AsyncClient, tenant: Any, code: str,
                    body: dict[str, Any]) -> dict[str, Any]:
    response = await client.put(f"/v1/providers/{code}", json=body, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def create_order(client: httpx.AsyncClient, tenant: Any, amount: int, currency: str,
                       description: str = "Consultation") -> dict[str, Any]:
    response = await client.post(
        "/v1/orders", headers={**tenant.headers, "Idempotency-Key": uuid.uuid4().hex},
        json={"customer_email": "patient@example.com", "currency": currency,
              "items": [{"description": description, "quantity": 1, "unit_amount": amount}]})
    assert response.status_code == 201, response.text
    return response.json()


async def start_checkout(client: httpx.AsyncClient, tenant: Any, order_id: str,
                         provider: str) -> dict[str, Any]:
    response = await client.post(
        f"/v1/orders/{order_id}/checkout", json={"provider": provider},
        headers={**tenant.headers, "Idempotency-Key": uuid.uuid4().hex})
    assert response.status_code == 201, response.text
    return response.json()


async def get_order(client: httpx.AsyncClient, tenant: Any, order_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/orders/{order_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def payments_of(client: httpx.AsyncClient, tenant: Any,
                      order_id: str) -> list[dict[str, Any]]:
    response = await client.get("/v1/payments", headers=tenant.headers,
                                params={"order_id": order_id})
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def inbox(client: httpx.AsyncClient, tenant: Any,
                provider: str | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"limit": 100}
    if provider:
        params["provider"] = provider
    response = await client.get("/v1/webhook-events", headers=tenant.headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def process_in_process(tenant: Any, event_id: str) -> str:
    """What the ``process_webhook_event`` actor does, on the test's own event loop."""
    from core.runtime import get_runtime
    from owner.tenants.service import lookup
    from tenant.webhooks.processing import process

    runtime = get_runtime()
    context = await lookup(runtime, slug=tenant.slug)
    assert context is not None
    return await process(runtime, context, uuid.UUID(event_id))


async def ledger_for(client: httpx.AsyncClient, tenant: Any,
                     order_id: str | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"limit": 100}
    if order_id:
        params["order_id"] = order_id
    response = await client.get("/v1/ledger/transactions", headers=tenant.headers,
                                params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def assert_paid_once(client: httpx.AsyncClient, tenant: Any, order: dict[str, Any],
                           provider: str, fee: int) -> dict[str, Any]:
    """Order ``paid``; one succeeded attempt; one balanced capture posting that agrees with
    the order (gross to the provider's clearing account, fee expensed); trial balance even."""
    state = await get_order(client, tenant, order["id"])
    assert (state["status"], state["payment_status"]) == ("paid", "paid"), state
    assert state["paid_at"] is not None

    attempts = await payments_of(client, tenant, order["id"])
    succeeded = [p for p in attempts if p["status"] == "succeeded"]
    assert len(succeeded) == 1, attempts
    payment = succeeded[0]
    assert (payment["provider"], payment["amount"], payment["currency"]) == (
        provider, order["total"], order["currency"])
    assert (payment["fee_amount"] or 0) == fee and payment["flags"] == {}

    journal = await ledger_for(client, tenant, order["id"])
    assert [t["kind"] for t in journal] == ["payment.captured"], journal
    entries = journal[0]["entries"]
    assert journal[0]["payment_id"] == payment["id"]
    assert {e["currency"] for e in entries} == {order["currency"]}
    assert sum(e["debit"] for e in entries) == sum(e["credit"] for e in entries)

    def net(account: str) -> int:
        return sum(e["debit"] - e["credit"] for e in entries if e["account"] == account)

    assert net(f"provider_clearing:{provider}") == order["total"] - fee
    assert net("provider_fees") == fee
    assert net("customer_receivable") == 0
    assert -(net("revenue") + net("tax_payable")) == order["total"]

    balances = await client.get(f"/v1/ledger/balances?currency={order['currency']}",
                                headers=tenant.headers)
    assert balances.status_code == 200, balances.text
    assert all(t["balanced"] for t in balances.json()["trial_balance"])
    return payment
