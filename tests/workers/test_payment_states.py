"""Payment statuses move only along their tables (tenant.orders.states.PAYMENT_STATUS,
tenant.payments.states.ATTEMPT_STATUS), whatever order provider events arrive in.

Events are delivered through the webhook door and applied by the worker's own function,
in-process, one at a time; the results are read back through the API.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.workers.helpers import open_order, order, post_event, sandbox_shop, success_event
from tests.workers.sandbox_events import event_body

pytestmark = pytest.mark.asyncio


async def _apply(client: Any, tenant: Any, body: bytes) -> str:
    """Deliver one event and apply it as the ``process_webhook_event`` actor does."""
    from core.runtime import get_runtime
    from owner.tenants.service import lookup
    from tenant.webhooks.processing import process

    event_id = json.loads(body)["id"]
    assert await post_event(client, tenant, body) == 200
    listed = await client.get("/v1/webhook-events", headers=tenant.headers,
                              params={"limit": 100})
    stored = next(e for e in listed.json()["data"] if e["provider_event_id"] == event_id)
    context = await lookup(get_runtime(), slug=tenant.slug)
    assert context is not None
    return await process(get_runtime(), context, uuid.UUID(stored["id"]))


async def _states(client: Any, tenant: Any, o: dict[str, Any]) -> tuple[str, str, str]:
    """The order's status and payment status, and its attempt's status."""
    state = await order(client, tenant, o["order_id"])
    payments = await client.get("/v1/payments", headers=tenant.headers,
                                params={"order_id": o["order_id"]})
    attempt, = payments.json()["data"]
    return state["status"], state["payment_status"], attempt["status"]


def _refund(o: dict[str, Any], refund_id: str, amount: int) -> bytes:
    return event_body("refund.succeeded", {"id": refund_id, "payment_id": o["payment_id"],
                                           "amount": amount, "currency": "USD"})


def _dispute(o: dict[str, Any], kind: str, status: str) -> bytes:
    return event_body(kind, {"id": "dp_1", "payment_id": o["payment_id"],
                             "amount": o["amount"], "currency": "USD", "status": status,
                             "reason": "fraudulent"})


async def _audit(client: Any, tenant: Any, o: dict[str, Any], action: str) -> dict[str, Any]:
    trail = await client.get("/v1/audit-log", headers=tenant.headers,
                             params={"entity_type": "order", "entity_id": o["order_id"]})
    entry, = [e for e in trail.json()["data"] if e["action"] == action]
    return entry["data"]


async def test_a_failure_after_a_success_does_not_unpay(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "unpay")
    o = await open_order(client, tenant)
    assert await _states(client, tenant, o) == ("pending_payment", "pending", "pending")
    assert await _apply(client, tenant, success_event(o)) == "processed"
    failed = event_body("payment.failed", {"id": o["payment_id"], "status": "failed",
                                           "failure_code": "card_declined"})
    assert await _apply(client, tenant, failed) == "processed"
    assert await _states(client, tenant, o) == ("paid", "paid", "succeeded")


async def test_a_success_after_a_failure_still_pays(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "retry")
    o = await open_order(client, tenant)
    failed = event_body("payment.failed", {"id": o["payment_id"], "status": "failed",
                                           "failure_code": "card_declined"})
    assert await _apply(client, tenant, failed) == "processed"
    assert await _states(client, tenant, o) == ("payment_failed", "not_paid", "failed")
    assert await _apply(client, tenant, success_event(o)) == "processed"
    assert await _states(client, tenant, o) == ("paid", "paid", "succeeded")


async def test_a_refunded_payment_stays_refunded(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "refunded")
    o = await open_order(client, tenant, amount=5_000)
    assert await _apply(client, tenant, success_event(o)) == "processed"
    assert await _apply(client, tenant, _refund(o, "re_full", 5_000)) == "processed"
    assert await _states(client, tenant, o) == ("refunded", "refunded", "succeeded")

    # the success again (a provider's redelivery under a new event id): nothing un-refunds
    assert await _apply(client, tenant, success_event(o)) == "processed"
    assert await _states(client, tenant, o) == ("refunded", "refunded", "succeeded")
    # a chargeback on money already given back is recorded, and the order stays refunded
    assert await _apply(client, tenant, _dispute(o, "dispute.created",
                                                 "needs_response")) == "processed"
    assert await _states(client, tenant, o) == ("refunded", "refunded", "succeeded")
    opened = await _audit(client, tenant, o, "dispute.opened")
    assert (opened["payment_status_kept"], opened["payment_status_refused"]) == (
        "refunded", "disputed")


async def test_a_dispute_won_after_a_partial_refund_keeps_the_refund(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "wonpart")
    o = await open_order(client, tenant, amount=5_000)
    assert await _apply(client, tenant, success_event(o)) == "processed"
    assert await _apply(client, tenant, _refund(o, "re_part", 2_000)) == "processed"
    assert (await _states(client, tenant, o))[:2] == ("partially_refunded", "partially_refunded")
    assert await _apply(client, tenant, _dispute(o, "dispute.created",
                                                 "needs_response")) == "processed"
    assert (await _states(client, tenant, o))[:2] == ("disputed", "disputed")
    assert await _apply(client, tenant, _dispute(o, "dispute.closed", "won")) == "processed"
    assert (await _states(client, tenant, o))[:2] == ("partially_refunded", "partially_refunded")
