"""The webhook door's fast lane (core/lanes.py): the same answers, metrics and errors as
the Litestar route behind it, which still serves what the lane leaves."""

from __future__ import annotations

import re

import pytest
from sqlalchemy.exc import OperationalError

from tests.integration.test_owner_catalog import assert_error
from tests.workers.sandbox_events import event_body, signed
from tests.workers.test_webhook_ingest import inbox, sandbox_tenant

pytestmark = pytest.mark.asyncio

ROUTE = 'method="POST",path="/webhooks/{tenant_slug}/{provider}"'


def requests_counted(text: str, status: int) -> float:
    pattern = (r'paymesh_requests_total\{app_name="paymesh",' + re.escape(ROUTE)
               + rf',status_code="{status}"\}} ([0-9.e+]+)')
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


async def test_answers_and_metrics_match_the_route(client, make_tenant):
    tenant = await sandbox_tenant(client, make_tenant)
    before = (await client.get("/metrics")).text
    body = event_body("payment.lane_check", {"id": "pay_lane"})
    url = f"/webhooks/{tenant.slug}/sandbox"
    first = await client.post(url, content=body, headers=signed(body))
    again = await client.post(url, content=body, headers=signed(body))
    assert first.status_code == again.status_code == 200
    assert first.json() == {"received": True, "duplicate": False}
    assert again.json() == {"received": True, "duplicate": True}
    assert first.headers["content-type"] == "application/json"
    forged = await client.post(url, content=body, headers={"Sandbox-Signature": "t=1,v1=00"})
    assert_error(forged, 400)
    unknown = await client.post("/webhooks/no-such-tenant-here/sandbox", content=body,
                                headers=signed(body))
    assert assert_error(unknown, 404)["message"] == "tenant not found"
    after = (await client.get("/metrics")).text
    # one series per route template, whichever of the two paths answered
    assert requests_counted(after, 200) - requests_counted(before, 200) == 2
    assert requests_counted(after, 400) - requests_counted(before, 400) == 1
    assert tenant.slug not in after
    assert len(await inbox(client, tenant)) == 1


async def test_what_the_lane_leaves_goes_through_litestar(client, make_tenant):
    tenant = await sandbox_tenant(client, make_tenant)
    url = f"/webhooks/{tenant.slug}/sandbox"
    body = event_body("payment.lane_chunked", {"id": "pay_chunked"})

    async def chunks():  # no Content-Length: chunked, so the lane leaves it
        yield body[:10]
        yield body[10:]

    streamed = await client.post(url, content=chunks(), headers=signed(body))
    assert streamed.status_code == 200 and streamed.json()["duplicate"] is False
    assert (await client.get(url)).status_code == 405
    assert (await client.post(f"{url}/extra", content=body,
                              headers=signed(body))).status_code == 404
    assert len(await inbox(client, tenant)) == 1


async def test_an_unexpected_error_is_answered_by_litestar(client, make_tenant, monkeypatch):
    from tenant.webhooks import service

    tenant = await sandbox_tenant(client, make_tenant)
    calls = []

    async def database_away(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(args)
        raise OperationalError("INSERT …", None, ConnectionRefusedError("down"))

    monkeypatch.setattr(service, "ingest", database_away)
    body = event_body("payment.lane_outage", {"id": "pay_outage"})
    response = await client.post(f"/webhooks/{tenant.slug}/sandbox", content=body,
                                  headers=signed(body))
    assert_error(response, 503)
    assert len(calls) == 2  # the lane, then the route (its work is safe to run twice)
