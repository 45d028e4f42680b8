"""Tenant provisioning, isolation and suspension (O3, O5) through HTTP."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from core.db import autocommit_connection
from tests.conftest import unique_slug
from tests.integration.test_owner_catalog import assert_error

pytestmark = pytest.mark.asyncio


async def test_create_tenant_returns_key_once(client, owner_headers, make_tenant):
    tenant = await make_tenant(currency="EUR")
    assert tenant.key.startswith("pm_ten_")
    assert tenant.data["default_currency"] == "EUR" and tenant.data["status"] == "active"
    listed = await client.get(f"/v1/owner/tenants/{tenant.slug}", headers=owner_headers)
    assert listed.status_code == 200 and "api_key" not in listed.json()
    own = await client.get("/v1/providers", headers=tenant.headers)
    assert own.status_code == 200 and own.json() == {"data": []}


@pytest.mark.parametrize(
    "body",
    [
        {"slug": "UPPER", "name": "x", "default_currency": "USD"},
        {"slug": "a", "name": "x", "default_currency": "USD"},
        {"slug": "ok-slug-x1", "name": "x", "default_currency": "ZZZ"},
        {"slug": "ok-slug-x2", "name": "", "default_currency": "USD"},
        {"slug": "ok-slug-x3", "name": "x", "default_currency": "USD", "cluster": "nowhere"},
        {"slug": "ok-slug-x4", "name": "x"},
        {"slug": "ok-slug-x5", "name": "x", "default_currency": "USD", "extra": True},
    ],
)
async def test_create_tenant_bad_input(client, owner_headers, body):
    assert_error(await client.post("/v1/owner/tenants", json=body, headers=owner_headers), 400)


async def test_duplicate_slug_is_409(client, owner_headers, make_tenant):
    tenant = await make_tenant()
    response = await client.post(
        "/v1/owner/tenants", headers=owner_headers,
        json={"slug": tenant.slug, "name": "again", "default_currency": "USD"})
    assert_error(response, 409, "tenant_exists")


async def test_concurrent_provisioning_of_20_tenants(client, owner_headers, platform):
    slugs = [unique_slug("c") for _ in range(20)]
    responses = await asyncio.gather(*[
        client.post("/v1/owner/tenants", headers=owner_headers,
                    json={"slug": s, "name": s, "default_currency": "USD"})
        for s in slugs
    ])
    assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses]
    keys = {r.json()["api_key"] for r in responses}
    assert len(keys) == 20
    for response in responses[:5]:  # each key reaches its own, working database
        key = response.json()["api_key"]
        ok = await client.get("/v1/providers", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
    prefix = platform["PAYMESH_TENANT_DB_PREFIX"]
    async with autocommit_connection(platform["PAYMESH_DATABASE_URL"]) as conn:
        names = set((await conn.execute(text(
            "SELECT datname FROM pg_database WHERE datname LIKE :p"), {"p": prefix + "c_%"}
        )).scalars())
    assert {prefix + s.replace("-", "_") for s in slugs} <= names


async def test_clones_share_a_connection_and_always_release_the_template_lock(
        client, owner_headers, make_tenant, pg_url):
    """Provisioning clones on a pooled connection; whether a clone succeeds or fails,
    the shared template lock is released before the connection is reused, so a
    migration of the template (the exclusive lock) can always start."""
    from core.errors import Conflict
    from core.settings import get_settings
    from owner.tenants import templates

    template = get_settings().template_db
    await make_tenant()  # the template exists and is at head
    pids = []
    for _ in range(2):
        async with templates.template_lock(pg_url, exclusive=False) as conn:
            pids.append(await conn.scalar(text("SELECT pg_backend_pid()")))
    assert pids[0] == pids[1]  # one connection served both

    existing = unique_slug("dup").replace("-", "_")
    await templates.clone(pg_url, template, existing)
    with pytest.raises(Conflict, match="already exists"):
        await templates.clone(pg_url, template, existing)
    async with autocommit_connection(pg_url) as conn:
        # a leaked shared lock would make this wait out the timeout and fail
        await conn.execute(text("SET lock_timeout = '5s'"))
        await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": templates.TEMPLATE_LOCK})
        await conn.execute(text("SELECT pg_advisory_unlock(:k)"),
                           {"k": templates.TEMPLATE_LOCK})
    await templates.drop(pg_url, existing)


async def test_isolation_between_tenants(client, owner_headers, make_tenant):
    a, b = await make_tenant("a"), await make_tenant("b")
    put = await client.put("/v1/providers/cash", json={"enabled": True}, headers=a.headers)
    assert put.status_code == 200, put.text
    # b sees nothing of a's configuration
    assert (await client.get("/v1/providers", headers=b.headers)).json() == {"data": []}
    # a tenant key naming another tenant is a 404, never the other tenant's data
    cross = await client.get("/v1/providers", headers={**b.headers, "Paymesh-Tenant": a.slug})
    assert_error(cross, 404)
    # the owner acts on a tenant by naming it
    owner_view = await client.get("/v1/providers",
                                  headers={**owner_headers, "Paymesh-Tenant": a.slug})
    assert [p["provider"] for p in owner_view.json()["data"]] == ["cash"]
    assert_error(await client.get("/v1/providers", headers=owner_headers), 404)
    assert_error(await client.get("/v1/providers",
                                  headers={**owner_headers, "Paymesh-Tenant": "nobody-here"}),
                 404)
    # another tenant's audit entity ids are simply not there
    trail = await client.get("/v1/audit-log?entity_type=provider_config&entity_id=cash",
                             headers=b.headers)
    assert trail.json()["data"] == []
    # path-addressed routes resolve the tenant from the path
    assert_error(await client.post("/webhooks/nobody-here/sandbox", content=b"{}"), 404)


async def test_suspended_tenant_gets_403_everywhere_and_keeps_data(client, owner_headers,
                                                                   make_tenant):
    tenant = await make_tenant()
    assert (await client.put("/v1/providers/cash", json={}, headers=tenant.headers)).status_code == 200
    suspended = await client.patch(f"/v1/owner/tenants/{tenant.slug}",
                                   json={"status": "suspended"}, headers=owner_headers)
    assert suspended.json()["status"] == "suspended"
    assert_error(await client.get("/v1/providers", headers=tenant.headers), 403,
                 "tenant_suspended")
    assert_error(await client.post(f"/webhooks/{tenant.slug}/cash", content=b"{}"), 403)
    assert_error(await client.get("/v1/providers",
                                  headers={**owner_headers, "Paymesh-Tenant": tenant.slug}), 403)
    listed = await client.get("/v1/owner/tenants?status=suspended&limit=100",
                              headers=owner_headers)
    assert tenant.slug in {t["slug"] for t in listed.json()["data"]}
    await client.patch(f"/v1/owner/tenants/{tenant.slug}", json={"status": "active"},
                       headers=owner_headers)
    kept = await client.get("/v1/providers", headers=tenant.headers)
    assert [p["provider"] for p in kept.json()["data"]] == ["cash"]
    bad = await client.patch(f"/v1/owner/tenants/{tenant.slug}", json={"status": "deleted"},
                             headers=owner_headers)
    assert_error(bad, 400)


async def test_tenant_list_paginates(client, owner_headers, make_tenant):
    await make_tenant()
    await make_tenant()
    first = await client.get("/v1/owner/tenants?limit=1&page=1", headers=owner_headers)
    body = first.json()
    assert body["limit"] == 1 and body["page"] == 1 and len(body["data"]) == 1
    assert body["has_more"] is True
    assert_error(await client.get("/v1/owner/tenants?limit=101", headers=owner_headers), 400)
    assert_error(await client.get("/v1/owner/tenants?page=0", headers=owner_headers), 400)
    assert_error(await client.get("/v1/owner/tenants?page=abc", headers=owner_headers), 400)


async def test_owner_audit_records_tenant_creation(make_tenant):
    from sqlalchemy import select

    from core.runtime import get_runtime
    from owner.audit.models import OwnerAuditLog

    tenant = await make_tenant()
    async with get_runtime().owner_session() as session:
        actions = (await session.scalars(select(OwnerAuditLog.action).where(
            OwnerAuditLog.entity_id == tenant.data["id"]))).all()
    assert "tenant.created" in actions


async def test_ids_and_tokens_of_another_tenant_are_404(client, make_tenant):
    import uuid

    a, b = await make_tenant("ida"), await make_tenant("idb")
    created = await client.post(
        "/v1/orders", headers={**a.headers, "Idempotency-Key": uuid.uuid4().hex},
        json={"customer_email": "x@example.com", "currency": "USD",
              "items": [{"description": "Visit", "quantity": 1, "unit_amount": 1000}]})
    assert created.status_code == 201, created.text
    order = created.json()
    token = order["pay_url"].rsplit("/", 1)[1]
    assert (await client.get(f"/v1/orders/{order['id']}", headers=a.headers)).status_code == 200
    assert_error(await client.get(f"/v1/orders/{order['id']}", headers=b.headers), 404)
    assert_error(await client.post(f"/v1/orders/{order['id']}/cancel", headers={
        **b.headers, "Idempotency-Key": uuid.uuid4().hex}), 404)
    assert (await client.get(f"/v1/orders/{order['id']}", headers=a.headers)).json()[
        "status"] == "pending_payment"
    foreign_page = await client.get(f"/pay/{b.slug}/{token}")
    assert foreign_page.status_code == 404
    assert order["number"] not in foreign_page.text
    listed = await client.get("/v1/orders", headers=b.headers)
    assert listed.json()["data"] == []
