"""The 14-state lifecycle through HTTP: every legal and every illegal manual transition,
on both fulfilment paths, plus the system-only edges and the unpaid auto-cancel."""

from __future__ import annotations

import uuid
from collections import deque
from datetime import timedelta

import pytest
from sqlalchemy import text

from core.db import utcnow
from tenant.orders.states import EDGES, Fulfillment, OrderStatus, allowed_targets
from tests.integration.test_orders_support import (
    TEST_ACTOR,
    assert_error,
    get_order,
    order,
    product,
    tenant_db,
)

pytestmark = pytest.mark.asyncio
S = OrderStatus


def route_to(target: OrderStatus, path: Fulfillment) -> list[OrderStatus] | None:
    """Shortest walk through the table from a new order to ``target`` on ``path``."""
    start = S.PENDING_PAYMENT
    seen = {start: [start]}
    queue = deque([start])
    while queue:
        here = queue.popleft()
        if here is target:
            return seen[here]
        for edge in EDGES:
            if edge.source is here and path in edge.paths and edge.target not in seen:
                seen[edge.target] = [*seen[here], edge.target]
                queue.append(edge.target)
    return None


class Orders:
    def __init__(self, client, tenant, path: Fulfillment) -> None:  # noqa: ANN001
        self.client, self.tenant, self.path = client, tenant, path
        self.product: dict | None = None

    async def new(self) -> dict:
        if self.path is Fulfillment.PHYSICAL:
            if self.product is None:
                self.product = await product(self.client, self.tenant, price=700)
            return await order(self.client, self.tenant,
                               [{"product_id": self.product["id"], "quantity": 1}])
        return await order(self.client, self.tenant)

    async def step(self, order_id: str, target: OrderStatus) -> None:
        from tenant.orders.lifecycle import lock_order, move

        source = OrderStatus((await get_order(self.client, self.tenant, order_id))["status"])
        manual = target in allowed_targets(source, self.path, manual_only=True)
        if manual:
            response = await self.client.post(f"/v1/orders/{order_id}/transition",
                                              json={"to": target}, headers=self.tenant.headers)
            assert response.status_code == 200, response.text
        elif target is S.PAID:
            await self.client.put("/v1/providers/cash", json={}, headers=self.tenant.headers)
            response = await self.client.post(f"/v1/orders/{order_id}/mark-paid",
                                              headers=self.tenant.headers)
            assert response.status_code == 200, response.text
        else:  # refunds, disputes, failed payments: the system's edges
            async with tenant_db(self.tenant.slug) as session:
                locked = await lock_order(session, uuid.UUID(order_id))
                await move(session, locked, target, actor=TEST_ACTOR, manual=False)

    async def reach(self, state: OrderStatus) -> str:
        route = route_to(state, self.path)
        assert route is not None
        created = await self.new()
        for target in route[1:]:
            await self.step(created["id"], target)
        assert (await get_order(self.client, self.tenant, created["id"]))["status"] == state
        return created["id"]


@pytest.mark.parametrize("path", list(Fulfillment))
async def test_every_manual_transition(client, make_tenant, path):
    tenant = await make_tenant()
    orders = Orders(client, tenant, path)
    legal = illegal = 0
    for source in S:
        if route_to(source, path) is None:
            continue  # e.g. "shipped" does not exist for a service
        allowed = allowed_targets(source, path, manual_only=True)
        probe = await orders.reach(source)
        for target in S:
            if target.value in allowed:
                continue
            response = await client.post(f"/v1/orders/{probe}/transition",
                                         json={"to": target, "reason": "try"},
                                         headers=tenant.headers)
            error = assert_error(response, 409, "invalid_transition")
            assert error["allowed"] == allowed and error["current"] == source
            assert error["param"] == "to"
            illegal += 1
        assert (await get_order(client, tenant, probe))["status"] == source
        for target in allowed:
            fresh = await orders.reach(source)
            response = await client.post(f"/v1/orders/{fresh}/transition",
                                         json={"to": target, "reason": "by hand"},
                                         headers=tenant.headers)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["status"] == target and body["status_reason"] == "by hand"
            trail = (await client.get(f"/v1/audit-log?entity_type=order&entity_id={fresh}",
                                      headers=tenant.headers)).json()["data"]
            assert trail[0]["action"] == "order.transitioned"
            assert trail[0]["data"]["from"] == source and trail[0]["data"]["to"] == target
            legal += 1
    assert legal >= 6 and illegal > 100


async def test_table_shape():
    """Both paths reach their end state, and the documented paths exist."""
    from tenant.orders.states import edge

    documented = {
        Fulfillment.PHYSICAL: [S.PENDING_PAYMENT, S.PAID, S.PROCESSING, S.READY_FOR_SHIPMENT,
                               S.SHIPPED, S.IN_TRANSIT, S.DELIVERED, S.ARCHIVED],
        Fulfillment.DIRECT: [S.PENDING_PAYMENT, S.PAID, S.COMPLETED, S.ARCHIVED],
    }
    for path, walk in documented.items():
        for source, target in zip(walk, walk[1:], strict=False):
            assert edge(source, target, path) is not None, (path, source, target)
    assert edge(S.SHIPPED, S.DELIVERED, Fulfillment.PHYSICAL) is not None  # in_transit optional
    assert edge(S.PAID, S.COMPLETED, Fulfillment.PHYSICAL) is None
    assert edge(S.PAID, S.PROCESSING, Fulfillment.DIRECT) is None
    assert route_to(S.COMPLETED, Fulfillment.PHYSICAL) is None
    assert route_to(S.SHIPPED, Fulfillment.DIRECT) is None
    assert allowed_targets(S.SHIPPED, Fulfillment.PHYSICAL, manual_only=True) == [
        "in_transit", "delivered"]
    for final in (S.CANCELLED, S.REFUNDED, S.DELIVERED, S.COMPLETED):
        assert "archived" in allowed_targets(final, Fulfillment.PHYSICAL, manual_only=True) + \
            allowed_targets(final, Fulfillment.DIRECT, manual_only=True)
    assert allowed_targets(S.ARCHIVED, Fulfillment.DIRECT, manual_only=False) == []


async def test_system_edges_are_not_manual(client, make_tenant):
    tenant = await make_tenant()
    created = await order(client, tenant)
    for target in ("paid", "payment_failed", "refunded", "disputed"):
        response = await client.post(f"/v1/orders/{created['id']}/transition",
                                     json={"to": target}, headers=tenant.headers)
        error = assert_error(response, 409, "invalid_transition")
        assert error["allowed"] == ["cancelled"]
    assert "set by the payment" in error["message"] or "cannot move" in error["message"]
    assert_error(await client.post(f"/v1/orders/{created['id']}/transition",
                                   json={"to": "teleported"}, headers=tenant.headers), 400)
    assert_error(await client.post(f"/v1/orders/{created['id']}/transition", json={},
                                   headers=tenant.headers), 400)
    assert_error(await client.post(f"/v1/orders/{uuid.uuid4()}/transition",
                                   json={"to": "cancelled"}, headers=tenant.headers), 404)
    assert (await get_order(client, tenant, created["id"]))["status"] == "pending_payment"


async def test_cancel_endpoint(client, make_tenant):
    tenant = await make_tenant()
    created = await order(client, tenant)
    response = await client.post(f"/v1/orders/{created['id']}/cancel",
                                 json={"reason": "patient rescheduled"}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "cancelled" and body["status_reason"] == "patient rescheduled"
    assert body["cancelled_at"] is not None and body["allowed_transitions"] == ["archived"]
    again = await client.post(f"/v1/orders/{created['id']}/cancel", headers=tenant.headers)
    assert assert_error(again, 409, "invalid_transition")["allowed"] == ["archived"]
    paid = await order(client, tenant)
    await client.put("/v1/providers/cash", json={}, headers=tenant.headers)  # mark-paid needs it
    assert (await client.post(f"/v1/orders/{paid['id']}/mark-paid",
                              headers=tenant.headers)).status_code == 200
    refused = assert_error(await client.post(f"/v1/orders/{paid['id']}/cancel",
                                             headers=tenant.headers), 409, "invalid_transition")
    assert refused["allowed"] == ["completed"]
    assert_error(await client.post(f"/v1/orders/{created['id']}/cancel",
                                   json={"reason": 5}, headers=tenant.headers), 400)


async def test_unpaid_orders_are_auto_cancelled(client, make_tenant):
    from tenant.orders.service import cancel_unpaid_orders

    tenant = await make_tenant()
    await client.patch("/v1/settings", json={"unpaid_auto_cancel_hours": 2},
                       headers=tenant.headers)
    stale, fresh, paid = await order(client, tenant), await order(client, tenant), \
        await order(client, tenant)
    await client.put("/v1/providers/cash", json={}, headers=tenant.headers)  # mark-paid needs it
    await client.post(f"/v1/orders/{paid['id']}/mark-paid", headers=tenant.headers)
    async with tenant_db(tenant.slug) as session:
        await session.execute(text(
            "UPDATE orders SET created_at = now() - interval '3 hours' WHERE id IN (:a, :b)"),
            {"a": uuid.UUID(stale["id"]), "b": uuid.UUID(paid["id"])})
    async with tenant_db(tenant.slug) as session:
        assert await cancel_unpaid_orders(session, utcnow()) == 1
    async with tenant_db(tenant.slug) as session:
        assert await cancel_unpaid_orders(session, utcnow()) == 0
        assert await cancel_unpaid_orders(session, utcnow() + timedelta(hours=5)) == 1
    assert (await get_order(client, tenant, stale["id"]))["status"] == "cancelled"
    assert (await get_order(client, tenant, stale["id"]))["status_reason"] == "unpaid after 2 h"
    assert (await get_order(client, tenant, fresh["id"]))["status"] == "cancelled"
    assert (await get_order(client, tenant, paid["id"]))["status"] == "paid"
    trail = (await client.get(f"/v1/audit-log?entity_type=order&entity_id={stale['id']}",
                              headers=tenant.headers)).json()["data"]
    assert trail[0]["actor_kind"] == "system" and trail[0]["data"]["to"] == "cancelled"
