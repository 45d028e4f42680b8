"""Provider refunds and disputes are rows (GET /v1/refunds, /v1/disputes), and settling
runs the effects registered for its movement (tenant.settlement.effects) once per batch.

Sandbox events are delivered through the webhook door and applied by the worker's own
function, in-process; results are read back through the API.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pytest

from tenant.settlement.effects import Captured, Movement, effect, unregister
from tests.reports_check import assert_reports_agree
from tests.workers.helpers import ledger_for, open_order, order, sandbox_shop, success_event
from tests.workers.sandbox_events import event_body
from tests.workers.test_batching import _deliver, _inbox, _process
from tests.workers.test_payment_states import _apply

pytestmark = pytest.mark.asyncio


def _refund(o: dict[str, Any], refund_id: str, amount: int, event_id: str | None = None) -> bytes:
    return event_body("refund.succeeded", {"id": refund_id, "payment_id": o["payment_id"],
                                           "amount": amount, "currency": "USD",
                                           "reason": "requested_by_customer"}, event_id)


def _dispute(o: dict[str, Any], kind: str, status: str, due: int | None = None) -> bytes:
    return event_body(kind, {"id": f"dp_{o['order_id'][:8]}", "payment_id": o["payment_id"],
                             "amount": o["amount"], "currency": "USD", "status": status,
                             "reason": "fraudulent", "evidence_due_by": due})


async def _list(client: Any, tenant: Any, what: str, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/{what}", headers=tenant.headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def test_a_provider_refund_is_a_row_once(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "rrow")
    o = await open_order(client, tenant, amount=5_000)
    assert await _apply(client, tenant, success_event(o)) == "processed"
    assert await _apply(client, tenant, _refund(o, "re_1", 2_000)) == "processed"
    # the provider delivers it again under another event id: no second row, no second post
    assert await _apply(client, tenant, _refund(o, "re_1", 2_000)) == "processed"

    refund, = await _list(client, tenant, "refunds", order_id=o["order_id"])
    assert (refund["status"], refund["provider_refund_id"], refund["amount"],
            refund["currency"], refund["provider"]) == ("succeeded", "re_1", 2_000, "USD",
                                                         "sandbox")
    assert refund["completed_at"] is not None and refund["payment_id"]
    one = await client.get(f"/v1/refunds/{refund['id']}", headers=tenant.headers)
    assert one.status_code == 200 and one.json() == refund
    assert await _list(client, tenant, "refunds", status="succeeded") == [refund]
    assert await _list(client, tenant, "refunds", status="pending") == []
    state = await order(client, tenant, o["order_id"])
    assert (state["status"], state["amount_refunded"]) == ("partially_refunded", 2_000)
    kinds = [t["kind"] for t in await ledger_for(client, tenant, o["order_id"])]
    assert sorted(kinds) == ["payment.captured", "refund.succeeded"]

    assert await _apply(client, tenant, _refund(o, "re_2", 3_000)) == "processed"
    state = await order(client, tenant, o["order_id"])
    assert (state["status"], state["payment_status"], state["amount_refunded"]) == (
        "refunded", "refunded", 5_000)
    assert len(await _list(client, tenant, "refunds", order_id=o["order_id"])) == 2
    report = await assert_reports_agree(client, tenant)
    assert (report["totals"]["gross"], report["totals"]["refunds"]) == (5_000, 5_000)


async def test_a_dispute_opens_then_closes(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "drow")
    won = await open_order(client, tenant, amount=4_000)
    lost = await open_order(client, tenant, amount=4_000)
    due = 1_900_000_000
    for o in (won, lost):
        assert await _apply(client, tenant, success_event(o)) == "processed"
        assert await _apply(client, tenant, _dispute(o, "dispute.created", "needs_response",
                                                     due)) == "processed"
    opened, = await _list(client, tenant, "disputes", order_id=won["order_id"])
    assert (opened["status"], opened["provider_dispute_id"], opened["amount"],
            opened["reason"], opened["closed_at"]) == ("open", f"dp_{won['order_id'][:8]}", 4_000, "fraudulent", None)
    assert datetime.fromisoformat(opened["evidence_due_by"]).timestamp() == due
    assert len(await _list(client, tenant, "disputes", status="open")) == 2
    assert (await order(client, tenant, won["order_id"]))["status"] == "disputed"

    assert await _apply(client, tenant, _dispute(won, "dispute.closed", "won")) == "processed"
    assert await _apply(client, tenant, _dispute(lost, "dispute.closed", "lost")) == "processed"
    # a closing delivered again changes nothing
    assert await _apply(client, tenant, _dispute(lost, "dispute.closed", "lost")) == "processed"
    closed = await client.get(f"/v1/disputes/{opened['id']}", headers=tenant.headers)
    assert closed.status_code == 200
    assert closed.json()["status"] == "won" and closed.json()["closed_at"] is not None
    gone, = await _list(client, tenant, "disputes", status="lost")
    assert gone["order_id"] == lost["order_id"]
    assert (await order(client, tenant, won["order_id"]))["status"] == "paid"
    assert (await order(client, tenant, lost["order_id"]))["status"] == "refunded"
    kinds = sorted(t["kind"] for t in await ledger_for(client, tenant, won["order_id"]))
    assert kinds == ["dispute.opened", "dispute.won", "payment.captured"]
    kinds = sorted(t["kind"] for t in await ledger_for(client, tenant, lost["order_id"]))
    assert kinds == ["dispute.lost", "dispute.opened", "payment.captured"]
    report = await assert_reports_agree(client, tenant)
    assert (report["totals"]["gross"], report["totals"]["disputes_lost"]) == (8_000, 4_000)


async def test_a_registered_capture_effect_runs_once_per_batch(client, make_tenant):
    """An effect registered for CAPTURED gets the whole batch in one call, inside the
    settling transaction (it sees the orders paid). The worker applies its message's own
    event alone, then the successes waiting beside it as one batch."""
    from core.sql import sql

    tenant = await sandbox_shop(client, make_tenant, "effect")
    orders = [await open_order(client, tenant, amount=1_000 + i) for i in range(4)]
    await _deliver(client, tenant, [success_event(o, f"evt_fx{i}") for i, o in enumerate(orders)])
    calls: list[list[str]] = []

    async def seen(db: Any, batch: Sequence[Captured]) -> None:
        calls.append(sorted(str(c.order_id) for c in batch))
        statuses = await (await sql(db)).fetch(
            "SELECT payment_status FROM orders WHERE id = ANY($1::uuid[])",
            [c.order_id for c in batch])
        assert {row[0] for row in statuses} == {"paid"}

    effect(Movement.CAPTURED, order=99)(seen)
    try:
        assert await _process(tenant, (await _inbox(client, tenant))["evt_fx0"]) == "processed"
    finally:
        unregister(Movement.CAPTURED, seen)
    assert calls == [[orders[0]["order_id"]], sorted(o["order_id"] for o in orders[1:])]
    for o in orders:
        assert (await order(client, tenant, o["order_id"]))["status"] == "paid"


async def test_a_failing_effect_rolls_the_capture_back(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "effectfail")
    o = await open_order(client, tenant)
    await _deliver(client, tenant, [success_event(o, "evt_fail")])

    async def broken(db: Any, batch: Sequence[Captured]) -> None:
        raise RuntimeError("effect failed")

    effect(Movement.CAPTURED, order=99)(broken)
    try:
        assert await _process(tenant, (await _inbox(client, tenant))["evt_fail"]) != "processed"
    finally:
        unregister(Movement.CAPTURED, broken)
    state = await order(client, tenant, o["order_id"])
    assert (state["status"], state["payment_status"]) == ("pending_payment", "pending")
    assert await ledger_for(client, tenant, o["order_id"]) == []
    # the same event once the effect is gone: paid, posted
    assert await _process(tenant, (await _inbox(client, tenant))["evt_fail"]) == "processed"
    assert (await order(client, tenant, o["order_id"]))["status"] == "paid"
    assert len(await ledger_for(client, tenant, o["order_id"])) == 1
