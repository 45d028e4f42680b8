"""The provider-discount sync of coupons (SPEC 3a, **Provider sync**; ``docs/coupons.md``).

Each try is what the ``sync_coupon_discount`` actor runs (:func:`tenant.coupons.sync.run`),
through the Polar provider (polar-sdk) against the SDK-model-built double
(``tests/providers/fake_polar.py``), which records the writes it takes and can be down.
Orders are paid in cash (a provider other than the discount's), so their redemption's sync
is due. The same path through a real worker is ``tests/e2e/test_coupon_polar_sync.py``.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio

from core.db import utcnow
from providers.base import ProviderConfig, ProviderDiscount
from providers.polar.provider import PolarProvider
from tenant.coupons import sync
from tests.integration.test_coupons_api import coupon, place, redemptions
from tests.providers.fake_polar import TOKEN, FakePolar

pytestmark = pytest.mark.asyncio


class Crash(BaseException):
    """The worker process dying (not an ``Exception``: nothing records it)."""


class CrashAfterWrite(PolarProvider):
    """Polar, with the worker dying right after Polar answered a write."""

    async def update_discount_max_redemptions(self, discount_id: str,
                                              max_redemptions: int) -> ProviderDiscount:
        await super().update_discount_max_redemptions(discount_id, max_redemptions)
        raise Crash

    async def delete_discount(self, discount_id: str) -> bool:
        await super().delete_discount(discount_id)
        raise Crash


@pytest_asyncio.fixture
async def server() -> AsyncIterator[FakePolar]:
    fake = FakePolar()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def gateway(server: FakePolar, cls: type[PolarProvider] = PolarProvider) -> Any:
    """What ``sync.run`` asks for the discount's provider: Polar, at the double."""
    provider = cls(ProviderConfig(tenant="t", code="polar", secret_key=TOKEN,
                                  api_base_url=server.url, config={"product_id": "p"}))

    async def gateway_for(runtime: Any, session: Any, tenant: Any, code: str) -> Any:
        assert code == "polar"
        return provider

    return gateway_for


async def context(slug: str) -> tuple[Any, Any]:
    from core.runtime import get_runtime
    from owner.tenants.service import lookup

    runtime = get_runtime()
    return runtime, await lookup(runtime, slug=slug)


async def paid_orders(client: Any, tenant: Any, discount_id: str, count: int = 1,
                      provider: str = "polar") -> tuple[dict[str, Any], list[uuid.UUID]]:
    """A coupon linked to ``provider``'s ``discount_id``, and ``count`` orders with it
    paid in cash."""
    await client.put("/v1/providers/cash", json={}, headers=tenant.headers)
    linked = await coupon(client, tenant, percent_off=10,
                          provider_discount={"provider": provider, "id": discount_id})
    orders = []
    for _ in range(count):
        made = (await place(client, tenant, linked["code"])).json()
        paid = await client.post(f"/v1/orders/{made['id']}/mark-paid", headers=tenant.headers)
        assert paid.status_code == 200, paid.text
        orders.append(uuid.UUID(made["id"]))
    return linked, orders


async def sync_of(client: Any, tenant: Any, coupon_id: str, order_id: uuid.UUID
                  ) -> dict[str, Any]:
    found = {r["order_id"]: r for r in await redemptions(client, tenant, coupon_id)}
    return found[str(order_id)]["sync"]


async def test_decrements_to_absolute_targets_once_per_order(client, make_tenant, server):
    tenant = await make_tenant()
    runtime, ctx = await context(tenant.slug)
    discount_id = server.add_discount(5, redemptions=2)
    linked, orders = await paid_orders(client, tenant, discount_id, count=2)
    assert (await sync_of(client, tenant, linked["id"], orders[0]))["status"] == "pending"
    async with runtime.tenant_session(ctx.db_url) as session:
        assert set(await sync.due(session, utcnow())) == set(orders)

    # the second order's sync runs first: each only lowers the cap to its own target
    assert (await sync.run(runtime, ctx, orders[1], gateway_for=gateway(server))).action \
        == "decremented"
    assert server.discounts[discount_id]["max_redemptions"] == 4
    outcome = await sync.run(runtime, ctx, orders[0], gateway_for=gateway(server))
    assert (outcome.status, outcome.action) == ("done", "decremented")
    assert server.discounts[discount_id]["max_redemptions"] == 3
    # duplicate deliveries and replays change nothing
    for order_id in orders:
        assert (await sync.run(runtime, ctx, order_id, gateway_for=gateway(server))).status \
            == "skipped"
    assert server.discount_writes == [("update", discount_id, 4), ("update", discount_id, 3)]
    shown = await sync_of(client, tenant, linked["id"], orders[0])
    assert (shown["status"], shown["action"], shown["attempts"]) == ("done", "decremented", 1)
    assert shown["synced_at"] is not None and shown["provider_max_target"] == 3
    async with runtime.tenant_session(ctx.db_url) as session:
        assert await sync.due(session, utcnow()) == []


async def test_last_slot_deletes_unlimited_skips_missing_is_already_deleted(
        client, make_tenant, server):
    tenant = await make_tenant()
    runtime, ctx = await context(tenant.slug)
    cases = [(server.add_discount(max_redemptions=1), "deleted"),
             (server.add_discount(max_redemptions=None), "skipped_unlimited"),
             ("disc_gone", "already_deleted")]
    for discount_id, action in cases:
        linked, (order_id,) = await paid_orders(client, tenant, discount_id)
        outcome = await sync.run(runtime, ctx, order_id, gateway_for=gateway(server))
        assert (outcome.status, outcome.action) == ("done", action), discount_id
        shown = await sync_of(client, tenant, linked["id"], order_id)
        assert (shown["status"], shown["action"]) == ("done", action)
    assert server.discount_writes == [("delete", cases[0][0], None)]
    assert cases[1][0] in server.discounts and server.discounts[cases[1][0]][
        "max_redemptions"] is None


async def test_paid_through_the_discounts_own_provider_needs_no_sync(client, make_tenant,
                                                                     server):
    tenant = await make_tenant()
    runtime, ctx = await context(tenant.slug)
    linked, (order_id,) = await paid_orders(client, tenant, server.add_discount(5),
                                            provider="cash")
    assert (await sync_of(client, tenant, linked["id"], order_id))["status"] == "not_linked"
    assert (await sync.run(runtime, ctx, order_id, gateway_for=gateway(server))).status \
        == "skipped"
    assert server.discount_writes == []


@pytest.mark.parametrize("cap, write", [(5, ("update", 4)), (1, ("delete", None))])
async def test_a_crash_after_the_provider_call_is_not_applied_twice(
        client, make_tenant, server, cap, write):
    tenant = await make_tenant()
    runtime, ctx = await context(tenant.slug)
    discount_id = server.add_discount(max_redemptions=cap)
    linked, (order_id,) = await paid_orders(client, tenant, discount_id)
    with pytest.raises(Crash):
        await sync.run(runtime, ctx, order_id, gateway_for=gateway(server, CrashAfterWrite))
    assert server.discount_writes == [(write[0], discount_id, write[1])]
    # the intent was recorded before the call; the outcome never was
    shown = await sync_of(client, tenant, linked["id"], order_id)
    assert (shown["status"], shown["action"], shown["attempts"]) == ("pending", None, 1)
    assert shown["provider_max_before"] == cap and shown["provider_max_target"] == cap - 1
    # a redelivery while the dead try's hold lasts does nothing; after it, the sweeper
    # sends it again and the retry re-reads the discount instead of writing again
    assert (await sync.run(runtime, ctx, order_id, gateway_for=gateway(server))).status \
        == "skipped"
    later = utcnow() + sync.LEASE + timedelta(seconds=1)
    async with runtime.tenant_session(ctx.db_url) as session:
        assert await sync.due(session, later) == [order_id]
    outcome = await sync.run(runtime, ctx, order_id, gateway_for=gateway(server), now=later)
    assert (outcome.status, outcome.action) == ("done", "decremented" if cap > 1 else "deleted")
    assert server.discount_writes == [(write[0], discount_id, write[1])]  # still the one write
    if cap > 1:
        assert server.discounts[discount_id]["max_redemptions"] == cap - 1


async def test_backoff_then_failed_then_replayed(client, make_tenant, server, monkeypatch):
    tenant = await make_tenant()
    runtime, ctx = await context(tenant.slug)
    monkeypatch.setattr(runtime, "settings", dataclasses.replace(
        runtime.settings, coupon_sync_max_attempts=3, coupon_sync_retry_base_ms=2_000))
    discount_id = server.add_discount(max_redemptions=4)
    linked, (order_id,) = await paid_orders(client, tenant, discount_id)
    server.discounts_down = True
    now = utcnow()
    waits = []
    for _ in range(3):
        outcome = await sync.run(runtime, ctx, order_id, gateway_for=gateway(server), now=now)
        if outcome.retry_at is not None:
            waits.append(outcome.retry_at - now)
            now = outcome.retry_at
    assert outcome.status == "failed" and outcome.retry_at is None
    assert [round(w.total_seconds()) for w in waits] == [2, 4]  # 2 s, 4 s, then failed
    shown = await sync_of(client, tenant, linked["id"], order_id)
    assert (shown["status"], shown["attempts"]) == ("failed", 3)
    assert "provider_unavailable" in shown["last_error"]
    listed = await client.get(f"/v1/coupons/{linked['id']}/redemptions",
                              params={"sync_status": "failed"}, headers=tenant.headers)
    assert [r["order_id"] for r in listed.json()["data"]] == [str(order_id)]

    server.discounts_down = False
    replayed = await client.post(
        f"/v1/coupons/{linked['id']}/redemptions/{order_id}/resync", headers=tenant.headers)
    assert replayed.status_code == 200, replayed.text
    assert (replayed.json()["sync"]["status"], replayed.json()["sync"]["attempts"]) == (
        "pending", 0)
    outcome = await sync.run(runtime, ctx, order_id, gateway_for=gateway(server))
    assert (outcome.status, outcome.action) == ("done", "decremented")
    assert server.discount_writes == [("update", discount_id, 3)]
    # replaying a done sync changes nothing
    again = await client.post(
        f"/v1/coupons/{linked['id']}/redemptions/{order_id}/resync", headers=tenant.headers)
    assert again.status_code == 200 and again.json()["sync"]["status"] == "done"
    assert (await sync.run(runtime, ctx, order_id, gateway_for=gateway(server))).status \
        == "skipped"
    assert server.discount_writes == [("update", discount_id, 3)]


def test_decide_covers_each_branch():
    from tenant.coupons.sync import decide

    def disc(cap: int | None) -> ProviderDiscount:
        return ProviderDiscount(id="d", max_redemptions=cap)

    assert decide(None, None).action == "already_deleted"
    assert decide(None, 0, attempted_delete=True).action == "deleted"
    assert decide(disc(None), 3).action == "skipped_unlimited"
    assert (decide(disc(1), 0).action, decide(disc(1), 0).write) == ("deleted", "delete")
    assert decide(disc(5), 4).write == "update" and decide(disc(5), 4).value == 4
    assert decide(disc(4), 4).write is None and decide(disc(3), 4).write is None
