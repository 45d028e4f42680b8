"""The provider-discount sync of coupons (SPEC 3a, **Provider sync**; ``docs/coupons.md``).

Until a provider that owns discounts is merged, the sync is driven against
:class:`DiscountsProvider`, a test-only :class:`PaymentProvider` whose discount methods
talk HTTP (Polar's paths and fields: ``GET|PATCH|DELETE /v1/discounts/{id}``,
``max_redemptions``, ``redemptions_count``) to :class:`DiscountServer`, a tiny in-process
double that counts the writes it receives. Orders are paid in cash (a provider other
than the discount's), so their redemption's sync is due; each try is what the
``sync_coupon_discount`` actor runs (:func:`tenant.coupons.sync.run`).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from core.db import utcnow
from providers.base import (
    CreatePayment,
    CredentialCheck,
    NormalizedEvent,
    NotSupported,
    PaymentProvider,
    PaymentResult,
    ProviderConfig,
    ProviderDiscount,
    ProviderUnavailable,
    RefundRequest,
    RefundResult,
    WebhookRequest,
)
from tenant.coupons import sync
from tests.integration.test_coupons_api import coupon, place, redemptions

pytestmark = pytest.mark.asyncio


class DiscountServer:
    """Polar's discount endpoints, in memory: the writes it took, and an outage switch."""

    def __init__(self) -> None:
        self.discounts: dict[str, dict[str, Any]] = {}
        self.writes: list[tuple[str, str, Any]] = []
        self.down = False

    def add(self, max_redemptions: int | None, used: int = 0) -> str:
        discount_id = f"disc_{uuid.uuid4().hex[:10]}"
        self.discounts[discount_id] = {"id": discount_id, "max_redemptions": max_redemptions,
                                       "redemptions_count": used}
        return discount_id

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            return httpx.Response(503, json={"detail": "maintenance"})
        discount_id = request.url.path.rsplit("/", 1)[-1]
        found = self.discounts.get(discount_id)
        if found is None:
            return httpx.Response(404, json={"type": "ResourceNotFound"})
        if request.method == "PATCH":
            value = json.loads(request.content)["max_redemptions"]
            self.writes.append(("update", discount_id, value))
            found["max_redemptions"] = value
        elif request.method == "DELETE":
            self.writes.append(("delete", discount_id, None))
            del self.discounts[discount_id]
            return httpx.Response(204)
        return httpx.Response(200, json=found)


class DiscountsProvider(PaymentProvider):
    """A provider that owns discounts (the discount half of the interface only)."""

    code = "discounts_test"

    async def _call(self, method: str, discount_id: str, body: Any = None) -> httpx.Response:
        response = await self.http.request(method, f"{self.config.api_base_url}/v1/discounts/"
                                           f"{discount_id}", json=body)
        if response.status_code >= 500:
            raise ProviderUnavailable(f"discount API answered {response.status_code}")
        return response

    @staticmethod
    def _discount(body: dict[str, Any]) -> ProviderDiscount:
        return ProviderDiscount(id=body["id"], max_redemptions=body["max_redemptions"],
                                redemptions_count=body["redemptions_count"])

    async def get_discount(self, discount_id: str) -> ProviderDiscount | None:
        response = await self._call("GET", discount_id)
        return None if response.status_code == 404 else self._discount(response.json())

    async def update_discount_max_redemptions(self, discount_id: str,
                                              max_redemptions: int) -> ProviderDiscount:
        response = await self._call("PATCH", discount_id, {"max_redemptions": max_redemptions})
        return self._discount(response.json())

    async def delete_discount(self, discount_id: str) -> bool:
        return (await self._call("DELETE", discount_id)).status_code != 404

    async def create_payment(self, request: CreatePayment) -> PaymentResult:
        raise NotSupported("test provider")

    async def fetch_payment(self, provider_payment_id: str) -> PaymentResult:
        raise NotSupported("test provider")

    async def refund(self, request: RefundRequest) -> RefundResult:
        raise NotSupported("test provider")

    def verify_webhook(self, request: WebhookRequest, *, now: Any = None) -> None:
        raise NotSupported("test provider")

    def parse_webhook(self, request: WebhookRequest) -> NormalizedEvent:
        raise NotSupported("test provider")

    async def test_credentials(self) -> CredentialCheck:
        raise NotSupported("test provider")


class Crash(BaseException):
    """The worker process dying (not an ``Exception``: nothing records it)."""


class CrashAfterWrite(DiscountsProvider):
    """Dies right after the provider answered a write."""

    async def update_discount_max_redemptions(self, discount_id: str,
                                              max_redemptions: int) -> ProviderDiscount:
        await super().update_discount_max_redemptions(discount_id, max_redemptions)
        raise Crash

    async def delete_discount(self, discount_id: str) -> bool:
        await super().delete_discount(discount_id)
        raise Crash


@pytest.fixture
def server() -> DiscountServer:
    return DiscountServer()


def gateway(server: DiscountServer, cls: type[DiscountsProvider] = DiscountsProvider) -> Any:
    http = httpx.AsyncClient(transport=httpx.MockTransport(server.handle))
    provider = cls(ProviderConfig(tenant="t", code="polar",
                                  api_base_url="http://discounts.test"), http)

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
    discount_id = server.add(max_redemptions=5, used=2)
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
    assert server.writes == [("update", discount_id, 4), ("update", discount_id, 3)]
    shown = await sync_of(client, tenant, linked["id"], orders[0])
    assert (shown["status"], shown["action"], shown["attempts"]) == ("done", "decremented", 1)
    assert shown["synced_at"] is not None and shown["provider_max_target"] == 3
    async with runtime.tenant_session(ctx.db_url) as session:
        assert await sync.due(session, utcnow()) == []


async def test_last_slot_deletes_unlimited_skips_missing_is_already_deleted(
        client, make_tenant, server):
    tenant = await make_tenant()
    runtime, ctx = await context(tenant.slug)
    cases = [(server.add(max_redemptions=1), "deleted"),
             (server.add(max_redemptions=None), "skipped_unlimited"),
             ("disc_gone", "already_deleted")]
    for discount_id, action in cases:
        linked, (order_id,) = await paid_orders(client, tenant, discount_id)
        outcome = await sync.run(runtime, ctx, order_id, gateway_for=gateway(server))
        assert (outcome.status, outcome.action) == ("done", action), discount_id
        shown = await sync_of(client, tenant, linked["id"], order_id)
        assert (shown["status"], shown["action"]) == ("done", action)
    assert server.writes == [("delete", cases[0][0], None)]
    assert cases[1][0] in server.discounts and server.discounts[cases[1][0]][
        "max_redemptions"] is None


async def test_paid_through_the_discounts_own_provider_needs_no_sync(client, make_tenant,
                                                                     server):
    tenant = await make_tenant()
    runtime, ctx = await context(tenant.slug)
    linked, (order_id,) = await paid_orders(client, tenant, server.add(5), provider="cash")
    assert (await sync_of(client, tenant, linked["id"], order_id))["status"] == "not_linked"
    assert (await sync.run(runtime, ctx, order_id, gateway_for=gateway(server))).status \
        == "skipped"
    assert server.writes == []


@pytest.mark.parametrize("cap, write", [(5, ("update", 4)), (1, ("delete", None))])
async def test_a_crash_after_the_provider_call_is_not_applied_twice(
        client, make_tenant, server, cap, write):
    tenant = await make_tenant()
    runtime, ctx = await context(tenant.slug)
    discount_id = server.add(max_redemptions=cap)
    linked, (order_id,) = await paid_orders(client, tenant, discount_id)
    with pytest.raises(Crash):
        await sync.run(runtime, ctx, order_id, gateway_for=gateway(server, CrashAfterWrite))
    assert server.writes == [(write[0], discount_id, write[1])]
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
    assert server.writes == [(write[0], discount_id, write[1])]  # still the one write
    if cap > 1:
        assert server.discounts[discount_id]["max_redemptions"] == cap - 1


async def test_backoff_then_failed_then_replayed(client, make_tenant, server, monkeypatch):
    tenant = await make_tenant()
    runtime, ctx = await context(tenant.slug)
    monkeypatch.setattr(runtime, "settings", dataclasses.replace(
        runtime.settings, coupon_sync_max_attempts=3, coupon_sync_retry_base_ms=2_000))
    discount_id = server.add(max_redemptions=4)
    linked, (order_id,) = await paid_orders(client, tenant, discount_id)
    server.down = True
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

    server.down = False
    replayed = await client.post(
        f"/v1/coupons/{linked['id']}/redemptions/{order_id}/resync", headers=tenant.headers)
    assert replayed.status_code == 200, replayed.text
    assert (replayed.json()["sync"]["status"], replayed.json()["sync"]["attempts"]) == (
        "pending", 0)
    outcome = await sync.run(runtime, ctx, order_id, gateway_for=gateway(server))
    assert (outcome.status, outcome.action) == ("done", "decremented")
    assert server.writes == [("update", discount_id, 3)]
    # replaying a done sync changes nothing
    again = await client.post(
        f"/v1/coupons/{linked['id']}/redemptions/{order_id}/resync", headers=tenant.headers)
    assert again.status_code == 200 and again.json()["sync"]["status"] == "done"
    assert (await sync.run(runtime, ctx, order_id, gateway_for=gateway(server))).status \
        == "skipped"
    assert server.writes == [("update", discount_id, 3)]


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
