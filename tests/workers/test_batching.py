"""Payment successes waiting in the inbox share a transaction (tenant.webhooks.processing).

Events are delivered through the webhook door with no worker running, then the worker's
own function processes one of them in-process, so what one call applied is exactly what
its batch did.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tenant.webhooks.processing import BATCH
from tests.workers.helpers import (
    ledger_for,
    open_order,
    order,
    post_event,
    sandbox_shop,
    success_event,
)
from tests.workers.sandbox_events import event_body

pytestmark = pytest.mark.asyncio


async def _inbox(client: Any, tenant: Any) -> dict[str, dict[str, Any]]:
    """Every inbox event of the tenant by provider event id."""
    events: dict[str, dict[str, Any]] = {}
    page = 1
    while True:
        response = await client.get("/v1/webhook-events", headers=tenant.headers,
                                    params={"limit": 100, "page": page})
        assert response.status_code == 200, response.text
        events.update((e["provider_event_id"], e) for e in response.json()["data"])
        if not response.json()["has_more"]:
            return events
        page += 1


async def _process(tenant: Any, event: dict[str, Any]) -> str:
    """What the ``process_webhook_event`` actor does for this event."""
    from core.runtime import get_runtime
    from owner.tenants.service import lookup
    from tenant.webhooks.processing import process

    runtime = get_runtime()
    context = await lookup(runtime, slug=tenant.slug)
    assert context is not None
    return await process(runtime, context, uuid.UUID(event["id"]))


async def _deliver(client: Any, tenant: Any, bodies: list[bytes]) -> None:
    for body in bodies:
        assert await post_event(client, tenant, body) == 200


def _statuses(inbox: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {event_id: e["status"] for event_id, e in inbox.items()}


async def _paid_once(client: Any, tenant: Any, o: dict[str, Any]) -> bool:
    state = await order(client, tenant, o["order_id"])
    postings = await ledger_for(client, tenant, o["order_id"])
    return (state["status"], state["payment_status"], len(postings)) == ("paid", "paid", 1)


async def test_waiting_successes_are_applied_in_one_batch_and_once(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "batch")
    orders = [await open_order(client, tenant, amount=1_000 + i) for i in range(BATCH + 5)]
    await _deliver(client, tenant, [success_event(o, f"evt_b{i}") for i, o in enumerate(orders)])

    assert await _process(tenant, (await _inbox(client, tenant))["evt_b0"]) == "processed"
    inbox = await _inbox(client, tenant)
    processed = [e for e in inbox.values() if e["status"] == "processed"]
    assert len(processed) == BATCH
    assert all(e["attempts"] == 1 for e in processed)
    assert sum(e["status"] == "received" for e in inbox.values()) == 5

    # a batched event's own message finds it applied and changes nothing
    assert await _process(tenant, processed[-1]) == "processed"
    for event in inbox.values():
        if event["status"] == "received":
            assert await _process(tenant, event) == "processed"
    assert set(_statuses(await _inbox(client, tenant)).values()) == {"processed"}
    for o in orders:
        assert await _paid_once(client, tenant, o), o


async def test_a_success_for_an_unknown_attempt_is_left_to_its_own_message(client,
                                                                           make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "early")
    orders = [await open_order(client, tenant) for _ in range(3)]
    early = event_body("payment.succeeded", {"id": "pay_not_stored_yet", "amount": 1_000,
                                             "currency": "USD", "status": "succeeded"},
                       "evt_early")
    await _deliver(client, tenant, [success_event(o, f"evt_e{i}") for i, o in enumerate(orders)]
                   + [early])

    assert await _process(tenant, (await _inbox(client, tenant))["evt_e0"]) == "processed"
    inbox = await _inbox(client, tenant)
    assert _statuses(inbox) == {"evt_e0": "processed", "evt_e1": "processed",
                                "evt_e2": "processed", "evt_early": "received"}
    assert inbox["evt_early"]["attempts"] == 0  # batching did not count an attempt

    assert await _process(tenant, inbox["evt_early"]) == "failed"
    early_event = (await _inbox(client, tenant))["evt_early"]
    assert early_event["attempts"] == 1
    assert "no payment attempt" in early_event["last_error"]
    for o in orders:
        assert await _paid_once(client, tenant, o), o


async def test_a_poisoned_success_spoils_no_batch(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "poison")
    good = [await open_order(client, tenant) for _ in range(3)]
    bad = await open_order(client, tenant)
    poisoned = event_body("payment.succeeded", {
        "id": bad["payment_id"], "amount": bad["amount"], "currency": "USD",
        "reference": bad["order_id"], "status": "succeeded", "fee": "not a number"},
        "evt_poisoned")
    await _deliver(client, tenant, [success_event(o, f"evt_g{i}") for i, o in enumerate(good)]
                   + [poisoned])

    # the batch with the poisoned event rolls back: its attempt is counted, the message's
    # own event is applied alone, the others wait for their own messages untouched
    assert await _process(tenant, (await _inbox(client, tenant))["evt_g0"]) == "processed"
    inbox = await _inbox(client, tenant)
    assert _statuses(inbox) == {"evt_g0": "processed", "evt_g1": "received",
                                "evt_g2": "received", "evt_poisoned": "failed"}
    assert (inbox["evt_g1"]["attempts"], inbox["evt_poisoned"]["attempts"]) == (0, 1)

    # no longer waiting in the inbox, it is left out of the next batch
    assert await _process(tenant, inbox["evt_g1"]) == "processed"
    assert _statuses(await _inbox(client, tenant)) == {
        "evt_g0": "processed", "evt_g1": "processed", "evt_g2": "processed",
        "evt_poisoned": "failed"}
    for o in good:
        assert await _paid_once(client, tenant, o), o
    assert (await order(client, tenant, bad["order_id"]))["status"] == "pending_payment"
    assert await _process(tenant, inbox["evt_poisoned"]) == "failed"
    assert (await _inbox(client, tenant))["evt_poisoned"]["attempts"] == 2


async def test_two_events_for_one_payment_in_a_batch_settle_it_once(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "twice")
    twice, once = await open_order(client, tenant), await open_order(client, tenant)
    await _deliver(client, tenant, [success_event(twice, "evt_t1"), success_event(twice, "evt_t2"),
                                    success_event(once, "evt_o1")])

    assert await _process(tenant, (await _inbox(client, tenant))["evt_o1"]) == "processed"
    assert set(_statuses(await _inbox(client, tenant)).values()) == {"processed"}
    for o in (twice, once):
        assert await _paid_once(client, tenant, o), o
        trail = await client.get("/v1/audit-log", headers=tenant.headers,
                                 params={"entity_type": "order", "entity_id": o["order_id"]})
        moves = [e["data"]["to"] for e in trail.json()["data"]
                 if e["action"] == "order.transitioned"]
        assert moves.count("paid") == 1, moves
