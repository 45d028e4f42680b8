"""One retry clock per event: the inbox row's ``attempts`` (tenant.webhooks.processing).

A real worker process tries an event that fails every time (a refund for a payment that
never succeeds). Each try is counted once on the row and the next one is sent on the row's
schedule, not by Dramatiq's retries: after ``PAYMESH_WEBHOOK_MAX_ATTEMPTS`` tries in all
the event is ``dead``, listed as such, and a replay applies it once it can be.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.conftest import TEST_DATA, worker_tag
from tests.workers.helpers import (
    open_order,
    order,
    post_event,
    sandbox_shop,
    success_event,
    wait_until,
)
from tests.workers.sandbox_events import event_body

pytestmark = pytest.mark.asyncio
TRIES = 4
WORKER_ENV = {"PAYMESH_WEBHOOK_MAX_ATTEMPTS": str(TRIES),
              "PAYMESH_WEBHOOK_RETRY_BASE_MS": "100"}


async def _inbox_event(client: Any, tenant: Any, provider_event_id: str,
                       status: str | None = None) -> dict[str, Any] | None:
    params: dict[str, Any] = {"limit": 100}
    if status:
        params["status"] = status
    response = await client.get("/v1/webhook-events", headers=tenant.headers, params=params)
    assert response.status_code == 200, response.text
    return next((e for e in response.json()["data"]
                 if e["provider_event_id"] == provider_event_id), None)


def _worker_log_lines(text: str) -> list[str]:
    path = TEST_DATA / "logs" / f"worker-{worker_tag()}.log"
    return [line for line in path.read_text(errors="replace").splitlines() if text in line]


async def _messages_for(redis_url: str, event_id: str) -> int:
    """Messages naming the event still in the broker: queued, delayed or in flight (a
    message stays in its queue's hash until it is acknowledged)."""
    redis = aioredis.from_url(redis_url)
    try:
        found = 0
        for key in ("paymesh:default.msgs", "paymesh:default.DQ.msgs"):
            found += sum(event_id.encode() in body for body in (await redis.hvals(key)))
        return found
    finally:
        await redis.aclose()


async def test_an_event_failing_every_time_is_tried_max_attempts_times_then_dead(
        client, make_tenant, live_api, start_worker, platform):
    tenant = await sandbox_shop(client, make_tenant, "clock")
    unpaid = await open_order(client, tenant, amount=5_000)
    refund = event_body("refund.succeeded", {"id": "re_clock", "payment_id": unpaid["payment_id"],
                                             "amount": 2_000, "currency": "USD"}, "evt_clock")
    start_worker(env=WORKER_ENV)
    assert await post_event(client, tenant, refund) == 200

    async def dead() -> bool:
        return await _inbox_event(client, tenant, "evt_clock", "dead") is not None

    await wait_until(dead, 90, "the refund event dead")
    event = await _inbox_event(client, tenant, "evt_clock", "dead")
    assert event is not None
    assert event["attempts"] == TRIES
    assert "before its payment" in event["last_error"]
    assert event["next_attempt_at"] is None

    async def settled() -> bool:  # the last try's message acknowledged, nothing else sent
        return await _messages_for(platform["PAYMESH_REDIS_URL"], event["id"]) == 0

    await wait_until(settled, 30, "no message left for the dead event")

    async def logged() -> bool:  # the worker's log reaches the test through a pipe
        return len(_worker_log_lines(f"event {event['id']} attempt {TRIES}/{TRIES}")) == 1

    await wait_until(logged, 30, "the last try in the worker log")
    # every try was counted once on the row, and none was handed to Dramatiq to retry
    tries = _worker_log_lines(f"event {event['id']} attempt ")
    assert [line.split(" attempt ")[1].split(" ")[0] for line in tries] == [
        f"{n}/{TRIES}" for n in range(1, TRIES + 1)], tries
    assert "dead" in tries[-1]
    assert _worker_log_lines(f"'{event['id']}') with unhandled exception") == []
    assert (await order(client, tenant, unpaid["order_id"]))["status"] == "pending_payment"

    # once the payment has succeeded, replaying the dead refund applies it
    assert await post_event(client, tenant, success_event(unpaid)) == 200

    async def paid() -> bool:
        return (await order(client, tenant, unpaid["order_id"]))["status"] == "paid"

    await wait_until(paid, 60, "the order paid")
    replayed = await client.post(f"/v1/webhook-events/{event['id']}/replay",
                                 headers=tenant.headers)
    assert replayed.status_code == 202, replayed.text

    async def refunded() -> bool:
        return (await order(client, tenant, unpaid["order_id"]))["status"] == \
            "partially_refunded"

    await wait_until(refunded, 60, "the replayed refund applied")
    again = await _inbox_event(client, tenant, "evt_clock")
    assert again is not None
    assert (again["status"], again["attempts"], again["last_error"]) == ("processed", 1, None)
