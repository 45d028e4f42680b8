"""The provider listing is served per process while the tenant's Redis stamp holds: every
committed change re-stamps it, a change elsewhere shows once the stamp moves, and without
Redis the listing is read from the database."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from core.redis import get_redis
from tenant.provider_configs import listing
from tests.integration.test_orders_support import (
    checkout,
    configure,
    gateway,  # noqa: F401 - fixture
    order,
    tenant_db,
)

pytestmark = pytest.mark.asyncio


async def _listed(client, tenant) -> dict[str, dict]:  # noqa: ANN001
    response = await client.get("/v1/providers", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return {p["provider"]: p for p in response.json()["data"]}


async def _stamp(tenant) -> bytes | None:  # noqa: ANN001
    return await get_redis().get(listing.STAMP_KEY.format(tenant=tenant.data["id"]))


async def _set_priority_behind_our_back(tenant, code: str, priority: int) -> None:  # noqa: ANN001
    """A change this process does not see: made straight in the database."""
    async with tenant_db(tenant.slug) as session:
        await session.execute(text("UPDATE provider_configs SET priority = :p "
                                   "WHERE provider_code = :c"), {"p": priority, "c": code})


@pytest.mark.usefixtures("gateway")
async def test_every_committed_change_restamps_and_shows_at_once(client, make_tenant):
    tenant = await make_tenant()
    await configure(client, tenant, "cash", priority=10)
    assert (await _listed(client, tenant))["cash"]["priority"] == 10
    stamps = [await _stamp(tenant)]
    assert stamps[0] is not None

    await configure(client, tenant, "cash", priority=20)  # PUT
    assert (await _listed(client, tenant))["cash"]["priority"] == 20
    stamps.append(await _stamp(tenant))

    tested = await client.post("/v1/providers/cash/test", headers=tenant.headers)
    assert tested.status_code == 200, tested.text
    assert (await _listed(client, tenant))["cash"]["last_tested_at"] is not None
    stamps.append(await _stamp(tenant))

    await configure(client, tenant, "sandbox", currencies=["USD"])
    made = await order(client, tenant)
    started = await checkout(client, tenant, made["id"], provider="sandbox")
    assert started.status_code == 201, started.text
    assert (await _listed(client, tenant))["sandbox"]["last_used_at"] is not None  # checkout
    stamps.append(await _stamp(tenant))

    removed = await client.delete("/v1/providers/cash", headers=tenant.headers)
    assert removed.status_code == 204
    assert "cash" not in await _listed(client, tenant)
    stamps.append(await _stamp(tenant))
    assert len(set(stamps)) == len(stamps)  # each change moved the stamp


async def test_a_change_elsewhere_shows_once_the_stamp_moves(client, make_tenant):
    tenant = await make_tenant()
    await configure(client, tenant, "cash", priority=10)
    assert (await _listed(client, tenant))["cash"]["priority"] == 10

    await _set_priority_behind_our_back(tenant, "cash", 99)
    # served from this process's copy: the tenant database is not read
    assert (await _listed(client, tenant))["cash"]["priority"] == 10
    available = await client.get("/v1/providers/available?currency=USD", headers=tenant.headers)
    assert {p["code"]: p["configured"] for p in available.json()["data"]}["cash"] is True

    # what another process's commit does next: a new stamp
    await get_redis().set(listing.STAMP_KEY.format(tenant=tenant.data["id"]), "elsewhere")
    assert (await _listed(client, tenant))["cash"]["priority"] == 99


async def test_a_lost_stamp_is_replaced_and_the_listing_read_again(client, make_tenant):
    tenant = await make_tenant()
    await configure(client, tenant, "cash", priority=10)
    assert (await _listed(client, tenant))["cash"]["priority"] == 10
    await _set_priority_behind_our_back(tenant, "cash", 55)
    await get_redis().delete(listing.STAMP_KEY.format(tenant=tenant.data["id"]))  # Redis lost it
    assert (await _listed(client, tenant))["cash"]["priority"] == 55
    assert await _stamp(tenant) is not None


async def test_without_redis_the_listing_comes_from_the_database(client, make_tenant,
                                                                 monkeypatch):
    from core.embedded import free_port
    from core.redis import get_redis as real_get_redis

    tenant = await make_tenant()
    await configure(client, tenant, "cash", priority=10)
    assert (await _listed(client, tenant))["cash"]["priority"] == 10
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setattr(listing, "get_redis", lambda _url=None: real_get_redis(nowhere))

    await _set_priority_behind_our_back(tenant, "cash", 77)
    assert (await _listed(client, tenant))["cash"]["priority"] == 77
    # a change made while Redis is away still answers, and shows here at once
    await configure(client, tenant, "cash", priority=78)
    assert (await _listed(client, tenant))["cash"]["priority"] == 78
