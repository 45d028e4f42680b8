"""Health, readiness, metrics, OpenAPI, keys and error shapes."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.test_owner_catalog import assert_error

pytestmark = pytest.mark.asyncio


async def test_health_ready_metrics_schema(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok",
                                                                   "redis": "ok"}
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200 and "paymesh" in metrics.text
    schema = await client.get("/schema/openapi.json")
    paths = schema.json()["paths"]
    for path in ("/v1/owner/providers", "/v1/owner/tenants", "/v1/providers",
                 "/v1/providers/available", "/v1/audit-log"):
        assert path in paths


async def test_revoked_key_is_rejected_and_last_used_is_recorded(client, owner_headers,
                                                                  make_tenant):
    from sqlalchemy import select

    from core.runtime import get_runtime
    from owner.keys.models import ApiKey

    tenant = await make_tenant()
    assert (await client.get("/v1/providers", headers=tenant.headers)).status_code == 200
    async with get_runtime().owner_session() as session:
        key = (await session.scalars(select(ApiKey).where(
            ApiKey.prefix == tenant.key[:12]))).one()
        assert key.last_used_at is not None and key.key_hash != tenant.key
        assert tenant.key not in str(key.__dict__)
    from core.audit import Actor
    from owner.keys.service import revoke

    async with get_runtime().owner_session() as session:
        await revoke(session, str(key.id), actor=Actor.system("tests"))
    assert_error(await client.get("/v1/providers", headers=tenant.headers), 401)


async def test_unknown_routes_and_methods_use_the_error_shape(client, make_tenant):
    tenant = await make_tenant()
    assert_error(await client.get("/v1/nothing-here", headers=tenant.headers), 404)
    assert_error(await client.post("/healthz"), 405)
    assert_error(await client.get("/v1/providers", headers={"Authorization": "Basic abc"}), 401)


async def test_http_metrics_are_labelled_by_route_template(client, make_tenant):
    tenant = await make_tenant("metrics")
    for _ in range(2):
        assert (await client.get("/v1/providers", headers=tenant.headers)).status_code == 200
    missing = await client.get(f"/v1/orders/{uuid.uuid4()}", headers=tenant.headers)
    assert missing.status_code == 404
    text = (await client.get("/metrics")).text
    assert 'paymesh_requests_total{app_name="paymesh",method="GET",path="/v1/providers",' \
           'status_code="200"}' in text
    assert 'path="/v1/orders/{order_id}",status_code="404"' in text
    assert str(tenant.slug) not in text  # one series per endpoint, not per tenant
    assert "paymesh_request_duration_seconds_bucket" in text
