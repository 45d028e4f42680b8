"""The demo path, end to end: pay link → sandbox card → signed webhook via a worker → paid."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from tests.workers.helpers import ledger_for, order, sandbox_shop, wait_until

pytestmark = pytest.mark.asyncio


async def _pay(live_api: str, pay_url: str, card: str) -> httpx.Response:
    """What a browser does: open the link, press pay, type the card, submit."""
    async with httpx.AsyncClient(timeout=30) as browser:
        page = await browser.get(pay_url)
        assert page.status_code == 200 and "sandbox" in page.text.lower()
        form = re.search(r'<form[^>]*action="([^"]*checkout[^"]*)"', page.text)
        assert form, page.text
        action = form.group(1)
        action = action if action.startswith("http") else f"{live_api}{action}"
        started = await browser.post(action, data={"provider": "sandbox"})
        assert started.status_code == 303, started.text
        hosted = started.headers["location"]
        assert "/sandbox/checkout/" in hosted
        assert (await browser.get(hosted)).status_code == 200
        return await browser.post(hosted, data={"card_number": card})


@pytest.mark.parametrize(("card", "status", "payment_status"), [
    ("4242424242424242", "paid", "paid"),
    ("4000000000000002", "payment_failed", "not_paid"),
])
async def test_pay_link_to_paid_through_the_worker(client, make_tenant, live_api, start_worker,
                                                   card, status, payment_status):
    tenant = await sandbox_shop(client, make_tenant, "e2e")
    created = await client.post(
        "/v1/orders", headers={**tenant.headers, "Idempotency-Key": uuid.uuid4().hex},
        json={"customer_email": "patient@example.com", "currency": "USD",
              "items": [{"description": "Consultation", "quantity": 1, "unit_amount": 12_500}]})
    assert created.status_code == 201, created.text
    order_id, pay_url = created.json()["id"], created.json()["pay_url"]
    assert pay_url.startswith(live_api)
    start_worker()
    result = await _pay(live_api, pay_url, card)
    assert result.status_code == 303  # back to the shop; the webhook does the rest

    async def settled() -> bool:
        events = await client.get("/v1/webhook-events", headers=tenant.headers,
                                  params={"status": "processed"})
        return len(events.json()["data"]) == 1

    await wait_until(settled, 60, "the sandbox webhook to be delivered and processed")
    state = await order(client, tenant, order_id)
    assert (state["status"], state["payment_status"]) == (status, payment_status)
    postings = await ledger_for(client, tenant, order_id)
    assert len(postings) == (1 if status == "paid" else 0)
    # the receipt is in the outbox, written with the payment
    from sqlalchemy import select

    from core.runtime import get_runtime
    from owner.tenants.service import lookup
    from tenant.notifications.models import Notification

    context = await lookup(get_runtime(), slug=tenant.slug)
    async with get_runtime().tenant_session(context.db_url) as session:
        receipts = (await session.scalars(select(Notification.template))).all()
    assert receipts == (["payment_receipt"] if status == "paid" else [])
