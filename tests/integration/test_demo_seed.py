"""``paymesh demo``'s seeding goes through the services: its keys work over HTTP, a second
start revokes the first start's keys and finds the demo tenant it made."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.asyncio


async def test_demo_bootstrap_issues_fresh_keys_and_revokes_the_old(client):
    import demo

    first = await demo._bootstrap()
    owner_first = {"Authorization": f"Bearer {first['owner_key']}"}
    tenant_first = {"Authorization": f"Bearer {first['tenant_key']}"}
    assert (await client.get(f"/v1/owner/tenants/{demo.DEMO_SLUG}",
                             headers=owner_first)).status_code == 200
    providers = await client.get("/v1/providers", headers=tenant_first)
    assert providers.status_code == 200, providers.text
    assert [p["provider"] for p in providers.json()["data"]] == ["sandbox"]

    second = await demo._bootstrap()  # the tenant exists now: found, not provisioned again
    assert second["owner_key"] != first["owner_key"]
    assert (await client.get("/v1/providers", headers=tenant_first)).status_code == 401
    assert (await client.get(f"/v1/owner/tenants/{demo.DEMO_SLUG}",
                             headers=owner_first)).status_code == 401
    assert (await client.get("/v1/providers", headers={
        "Authorization": f"Bearer {second['tenant_key']}"})).status_code == 200
