"""Event handlers are registered, one per normalized event type (tenant.webhooks.handlers).

The processing loop dispatches through the registry; a type with no handler is stored for
the record and marked processed. Events go in through the webhook door and are processed
in-process by the worker's own function, as in test_batching.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from providers.base import EventType
from tenant.webhooks.handlers import Applied, Inbound, handles, registered
from tests.workers.helpers import open_order, order, post_event, sandbox_shop, success_event
from tests.workers.sandbox_events import event_body


def test_every_event_type_but_ignored_has_exactly_one_handler():
    handlers = registered()
    assert set(handlers) == set(EventType) - {EventType.IGNORED}

    async def second(inbound: Inbound) -> Applied:
        return Applied.NOTED

    with pytest.raises(ValueError, match="payment.succeeded is handled by"):
        handles(EventType.PAYMENT_SUCCEEDED)(second)
    assert registered() == handlers  # the refused registration changed nothing


async def _process(tenant: Any, provider_event_id: str, client: Any) -> dict[str, Any]:
    from core.runtime import get_runtime
    from owner.tenants.service import lookup
    from tenant.webhooks.processing import process

    events = (await client.get("/v1/webhook-events", headers=tenant.headers,
                               params={"limit": 100})).json()["data"]
    event = next(e for e in events if e["provider_event_id"] == provider_event_id)
    runtime = get_runtime()
    context = await lookup(runtime, slug=tenant.slug)
    assert context is not None
    await process(runtime, context, uuid.UUID(event["id"]))
    response = await client.get("/v1/webhook-events", headers=tenant.headers,
                                params={"limit": 100})
    return next(e for e in response.json()["data"] if e["provider_event_id"] == provider_event_id)


@pytest.mark.asyncio
async def test_events_are_applied_by_their_handlers_and_unhandled_ones_noted(client,
                                                                          make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "handlers")
    paid = await open_order(client, tenant, amount=4_000)
    bodies = {
        "evt_noise": event_body("noise.event", {"id": "n1"}, "evt_noise"),
        "evt_paid": success_event(paid, "evt_paid"),
        "evt_refund": event_body("refund.succeeded", {
            "id": "re_h1", "payment_id": paid["payment_id"], "amount": 1_000,
            "currency": "USD"}, "evt_refund"),
    }
    for body in bodies.values():
        assert await post_event(client, tenant, body) == 200

    noise = await _process(tenant, "evt_noise", client)
    assert (noise["type"], noise["status"], noise["attempts"]) == ("ignored", "processed", 1)
    assert (await _process(tenant, "evt_paid", client))["status"] == "processed"
    refund = await _process(tenant, "evt_refund", client)
    assert (refund["status"], refund["last_error"]) == ("processed", None)
    state = await order(client, tenant, paid["order_id"])
    assert (state["status"], state["payment_status"]) == ("partially_refunded",
                                                          "partially_refunded")
