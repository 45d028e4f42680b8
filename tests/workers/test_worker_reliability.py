"""Reliability of the webhook → worker path with real Dramatiq worker processes (T10)."""

from __future__ import annotations

import asyncio
import random
import signal

import pytest

from tests.conftest import stop_process
from tests.workers.helpers import (
    event_counts,
    ledger_for,
    open_order,
    order,
    post_event,
    sandbox_shop,
    success_event,
    wait_until,
)
from tests.workers.sandbox_events import event_body

pytestmark = pytest.mark.asyncio


async def test_duplicate_storm_applies_each_effect_once(client, make_tenant, live_api,
                                                        start_worker):
    tenant = await sandbox_shop(client, make_tenant, "storm")
    orders = [await open_order(client, tenant, amount=1_000 + i) for i in range(200)]
    bodies = [success_event(o) for o in orders]
    deliveries = [b for b in bodies for _ in range(5)]
    random.Random(7).shuffle(deliveries)
    start_worker(threads=8)
    gate = asyncio.Semaphore(32)

    async def deliver(body: bytes) -> int:
        async with gate:
            return await post_event(client, tenant, body)

    statuses = await asyncio.gather(*[deliver(b) for b in deliveries])
    assert statuses == [200] * 1_000

    async def all_processed() -> bool:
        return (await event_counts(client, tenant))["processed"] == 200

    await wait_until(all_processed, 120, "200 processed events")
    counts = await event_counts(client, tenant)
    assert counts == {"received": 0, "processed": 200, "failed": 0, "dead": 0}
    for o in orders[:: 20]:  # a sample: paid once, posted once
        state = await order(client, tenant, o["order_id"])
        assert (state["status"], state["payment_status"]) == ("paid", "paid")
        postings = await ledger_for(client, tenant, o["order_id"])
        assert len(postings) == 1
    balances = (await client.get("/v1/ledger/balances", headers=tenant.headers)).json()
    revenue = sum(o["amount"] for o in orders)
    assert any(b.get("account") == "revenue" and b.get("balance") in (revenue, -revenue)
               for b in balances["data"]), balances


async def test_refund_and_dispute_before_payment_end_in_the_right_state(
        client, make_tenant, live_api, start_worker):
    tenant = await sandbox_shop(client, make_tenant, "ooo")
    refunded = await open_order(client, tenant, amount=5_000)
    disputed = await open_order(client, tenant, amount=7_000)
    early = [
        event_body("refund.succeeded", {"id": "re_1", "payment_id": refunded["payment_id"],
                                        "amount": 2_000, "currency": "USD"}),
        event_body("dispute.created", {"id": "dp_1", "payment_id": disputed["payment_id"],
                                       "amount": 7_000, "currency": "USD",
                                       "status": "needs_response", "reason": "fraudulent"}),
    ]
    start_worker()
    for body in early:
        assert await post_event(client, tenant, body) == 200
    await asyncio.sleep(2)  # the early events fail and wait for their retry
    assert (await order(client, tenant, refunded["order_id"]))["status"] == "pending_payment"
    for o in (refunded, disputed):
        assert await post_event(client, tenant, success_event(o)) == 200

    async def settled() -> bool:
        a = await order(client, tenant, refunded["order_id"])
        b = await order(client, tenant, disputed["order_id"])
        return (a["status"], b["status"]) == ("partially_refunded", "disputed")

    await wait_until(settled, 90, "refund and dispute applied after the payments")
    a = await order(client, tenant, refunded["order_id"])
    b = await order(client, tenant, disputed["order_id"])
    assert a["payment_status"] == "partially_refunded" and b["payment_status"] == "disputed"
    closed = event_body("dispute.closed", {"id": "dp_1", "payment_id": disputed["payment_id"],
                                           "amount": 7_000, "currency": "USD",
                                           "status": "won"})
    assert await post_event(client, tenant, closed) == 200

    async def won() -> bool:
        return (await order(client, tenant, disputed["order_id"]))["status"] == "paid"

    await wait_until(won, 60, "dispute won")
    kinds = sorted(t["kind"] for t in await ledger_for(client, tenant, disputed["order_id"]))
    assert kinds == ["dispute.opened", "dispute.won", "payment.captured"]


async def test_killed_worker_loses_nothing_and_applies_nothing_twice(
        client, make_tenant, live_api, start_worker, platform):
    tenant = await sandbox_shop(client, make_tenant, "kill")
    orders = [await open_order(client, tenant, amount=2_000 + i) for i in range(100)]
    bodies = [success_event(o) for o in orders]
    bodies += [event_body("noise.event", {"id": f"n{i}"}) for i in range(900)]
    random.Random(11).shuffle(bodies)
    gate = asyncio.Semaphore(32)

    async def deliver(body: bytes) -> int:
        async with gate:
            return await post_event(client, tenant, body)

    assert await asyncio.gather(*[deliver(b) for b in bodies]) == [200] * 1_000
    first = start_worker(threads=8)

    async def some_done() -> bool:
        return (await event_counts(client, tenant))["processed"] >= 150

    await wait_until(some_done, 120, "the first worker to make progress")
    stop_process(first, signal.SIGKILL)
    start_worker(threads=8)
    from tests.integration.test_cli import run_cli

    async def all_done() -> bool:
        counts = await event_counts(client, tenant)
        if counts["processed"] < 1_000:
            # what the killed worker held is re-enqueued by the sweeper
            await asyncio.to_thread(run_cli, ["scheduler", "--once", "--job", "sweep_inbox"],
                                    {"PAYMESH_SWEEP_STUCK_AFTER_SECONDS": "5"})
        return counts["processed"] == 1_000

    await wait_until(all_done, 240, "all 1,000 events processed")
    for o in orders:
        state = await order(client, tenant, o["order_id"])
        assert state["status"] == "paid", state
    for o in orders[:: 10]:
        assert len(await ledger_for(client, tenant, o["order_id"])) == 1
