"""Shared steps of the worker tests: a sandbox shop, open orders, signed events, waiting."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from tests.workers.sandbox_events import SANDBOX_KEY, event_body, signed


async def sandbox_shop(client: Any, make_tenant: Any, stem: str = "shop") -> Any:
    tenant = await make_tenant(stem)
    response = await client.put("/v1/providers/sandbox",
                                json={"secret_key": SANDBOX_KEY, "is_default": True},
                                headers=tenant.headers)
    assert response.status_code == 200, response.text
    return tenant


async def open_order(client: Any, tenant: Any, amount: int = 1_000,
                     currency: str = "USD") -> dict[str, Any]:
    """An order with a live sandbox payment attempt: {order_id, payment_id, amount, …}."""
    order = await client.post(
        "/v1/orders", headers={**tenant.headers, "Idempotency-Key": uuid.uuid4().hex},
        json={"customer_email": "patient@example.com", "currency": currency,
              "items": [{"description": "Consultation", "quantity": 1,
                         "unit_amount": amount}]})
    assert order.status_code == 201, order.text
    order_id = order.json()["id"]
    checkout = await client.post(
        f"/v1/orders/{order_id}/checkout", json={"provider": "sandbox"},
        headers={**tenant.headers, "Idempotency-Key": uuid.uuid4().hex})
    assert checkout.status_code == 201, checkout.text
    payment = checkout.json()["payment"]
    return {"order_id": order_id, "payment_id": payment["provider_payment_id"],
            "amount": order.json()["total"], "currency": currency,
            "redirect_url": checkout.json()["redirect_url"]}


def success_event(order: dict[str, Any], event_id: str | None = None) -> bytes:
    return event_body("payment.succeeded", {
        "id": order["payment_id"], "amount": order["amount"], "currency": order["currency"],
        "reference": order["order_id"], "status": "succeeded"}, event_id)


async def post_event(client: Any, tenant: Any, body: bytes) -> int:
    response = await client.post(f"/webhooks/{tenant.slug}/sandbox", content=body,
                                 headers=signed(body))
    return response.status_code


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float,
                     what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def event_counts(client: Any, tenant: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in ("received", "processed", "failed", "dead"):
        total, page = 0, 1
        while True:
            response = await client.get("/v1/webhook-events", headers=tenant.headers,
                                        params={"status": status, "limit": 100, "page": page})
            body = response.json()
            total += len(body["data"])
            if not body["has_more"]:
                break
            page += 1
        counts[status] = total
    return counts


async def order(client: Any, tenant: Any, order_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/orders/{order_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def ledger_for(client: Any, tenant: Any, order_id: str) -> list[dict[str, Any]]:
    response = await client.get("/v1/ledger/transactions", headers=tenant.headers,
                                params={"order_id": order_id, "limit": 100})
    assert response.status_code == 200, response.text
    return response.json()["data"]
