"""Tenants on two Postgres servers: placement and routing (O4)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from core.embedded import EmbeddedPostgres
from tests.conftest import FAST_PG, TEST_DATA, worker_id, worker_tag
from tests.integration.test_owner_catalog import assert_error

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def second_server() -> Iterator[str]:
    url = os.environ.get("PAYMESH_TEST_SECOND_DATABASE_URL")
    if url:
        yield url
        return
    server = EmbeddedPostgres.start(TEST_DATA / f"pg-second-{worker_id()}", tuning=FAST_PG)
    try:
        yield server.url
    finally:
        server.stop()


async def test_tenants_on_two_servers_are_served(client, owner_headers, make_tenant,
                                                 second_server):
    name = f"second-{worker_tag()}"
    created = await client.post("/v1/owner/clusters", headers=owner_headers,
                                json={"name": name, "url": second_server, "max_tenants": 2})
    assert created.status_code == 201, created.text
    assert_error(await client.post("/v1/owner/clusters", headers=owner_headers,
                                   json={"name": name, "url": second_server}), 409)
    assert_error(await client.post("/v1/owner/clusters", headers=owner_headers,
                                   json={"name": "x", "url": "mysql://nope"}), 400)
    named = await make_tenant("s2", cluster=name)
    assert named.data["cluster"] == name
    served = [named]
    for _ in range(3):  # each new tenant goes to the server with the fewest tenants
        listed = (await client.get("/v1/owner/clusters", headers=owner_headers)).json()["data"]
        active = [c for c in listed if c["is_active"] and (
            c["max_tenants"] is None or c["tenant_count"] < c["max_tenants"])]
        expected = min(active, key=lambda c: c["tenant_count"])["name"]
        placed = await make_tenant("auto")
        assert placed.data["cluster"] == expected
        served.append(placed)
    assert {t.data["cluster"] for t in served} >= {name}
    for tenant in served:
        put = await client.put("/v1/providers/cash", json={"priority": 3}, headers=tenant.headers)
        assert put.status_code == 200, put.text
        listed = await client.get("/v1/providers", headers=tenant.headers)
        assert [p["provider"] for p in listed.json()["data"]] == ["cash"]
    clusters = await client.get("/v1/owner/clusters", headers=owner_headers)
    counts = {c["name"]: c["tenant_count"] for c in clusters.json()["data"]}
    assert counts[name] == sum(t.data["cluster"] == name for t in served)
    # a full server is skipped
    full = await client.post("/v1/owner/clusters", headers=owner_headers,
                             json={"name": f"full-{worker_tag()}", "url": second_server,
                                   "max_tenants": 0})
    assert full.status_code == 201
    assert (await make_tenant("skip")).data["cluster"] != f"full-{worker_tag()}"
    # later tests in this worker keep to the default server
    async with __import__("core.runtime", fromlist=["get_runtime"]).get_runtime() \
            .owner_session() as session:
        from sqlalchemy import update

        from owner.tenants.models import DbCluster

        await session.execute(update(DbCluster).where(DbCluster.name != "default")
                              .values(is_active=False))
