"""Webhook ingest (T9): verified before storage, stored once, acknowledged after commit."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.integration.test_owner_catalog import assert_error
from tests.workers.sandbox_events import SANDBOX_KEY, event_body, signed

pytestmark = pytest.mark.asyncio


async def sandbox_tenant(client, make_tenant):  # noqa: ANN001, ANN201
    tenant = await make_tenant("wh")
    response = await client.put("/v1/providers/sandbox", json={"secret_key": SANDBOX_KEY},
                                headers=tenant.headers)
    assert response.status_code == 200, response.text
    return tenant


async def inbox(client, tenant, **params):  # noqa: ANN001, ANN003, ANN201
    response = await client.get("/v1/webhook-events", params={"limit": 100, **params},
                                headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def test_valid_event_is_stored_once(client, make_tenant):
    tenant = await sandbox_tenant(client, make_tenant)
    body = event_body("payment.weird_unknown_type", {"id": "pay_1"})
    url = f"/webhooks/{tenant.slug}/sandbox"
    first = await client.post(url, content=body, headers=signed(body))
    assert first.status_code == 200 and first.json() == {"received": True, "duplicate": False}
    again = await asyncio.gather(*[client.post(url, content=body, headers=signed(body))
                                   for _ in range(5)])
    assert all(r.status_code == 200 and r.json()["duplicate"] for r in again)
    events = await inbox(client, tenant)
    assert len(events) == 1 and events[0]["type"] == "ignored"
    assert events[0]["status"] == "received"


async def test_a_concurrent_burst_with_duplicates_stores_each_event_once(client, make_tenant):
    """Concurrent requests share inbox batches; a duplicate inside one batch is still one."""
    tenant = await sandbox_tenant(client, make_tenant)
    url = f"/webhooks/{tenant.slug}/sandbox"
    bodies = [event_body("noise.event", {"id": f"x{n}"}, f"evt_burst_{n}") for n in range(30)]
    requests = [body for body in bodies for _ in range(2)]
    answers = await asyncio.gather(*[client.post(url, content=b, headers=signed(b))
                                     for b in requests])
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    fresh = [b for b, r in zip(requests, answers, strict=True) if not r.json()["duplicate"]]
    assert sorted(fresh) == sorted(bodies)  # each event acknowledged as new exactly once
    events = await inbox(client, tenant)
    assert sorted(e["provider_event_id"] for e in events) == sorted(
        f"evt_burst_{n}" for n in range(30))


async def test_forged_stale_malformed_oversized_are_refused_and_leave_no_trace(client,
                                                                              make_tenant):
    tenant = await sandbox_tenant(client, make_tenant)
    url = f"/webhooks/{tenant.slug}/sandbox"
    body = event_body("payment.succeeded", {"id": "pay_x", "amount": 100, "currency": "USD"})
    forged = await client.post(url, content=body, headers=signed(body, secret="whsec_wrong"))
    assert_error(forged, 400, "invalid_signature")
    stale = await client.post(url, content=body,
                              headers=signed(body, timestamp=int(time.time()) - 3600))
    assert_error(stale, 400, "stale_signature")
    unsigned = await client.post(url, content=body, headers={"Content-Type": "application/json"})
    assert_error(unsigned, 400)
    garbage_header = await client.post(url, content=body, headers={"Sandbox-Signature": "nope"})
    assert_error(garbage_header, 400)
    # a valid signature over one body replayed with another body
    other = event_body("payment.succeeded", {"id": "pay_y", "amount": 999, "currency": "USD"})
    swapped = await client.post(url, content=other, headers=signed(body))
    assert_error(swapped, 400, "invalid_signature")
    # signed garbage is malformed, not a server error
    junk = b"{not json"
    assert_error(await client.post(url, content=junk, headers=signed(junk)), 400)
    huge = b"{" + b" " * (300 * 1024) + b"}"
    oversized = await client.post(url, content=huge, headers=signed(huge))
    assert oversized.status_code == 413
    # not configured for this tenant / unknown provider
    assert_error(await client.post(f"/webhooks/{tenant.slug}/stripe", content=body,
                                   headers=signed(body)), 404)
    assert_error(await client.post(f"/webhooks/{tenant.slug}/nope", content=body,
                                   headers=signed(body)), 404)
    assert await inbox(client, tenant) == []
    metrics = (await client.get("/metrics")).text
    assert 'paymesh_webhooks_rejected_total{provider="sandbox",reason="invalid_signature"}' \
        in metrics


async def test_inbox_filters_and_replay(client, make_tenant):
    tenant = await sandbox_tenant(client, make_tenant)
    body = event_body("noise.event", {"id": "n1"})
    await client.post(f"/webhooks/{tenant.slug}/sandbox", content=body, headers=signed(body))
    events = await inbox(client, tenant, status="received")
    assert len(events) == 1
    assert await inbox(client, tenant, status="processed") == []
    assert_error(await client.get("/v1/webhook-events?status=bogus", headers=tenant.headers), 400)
    replay = await client.post(f"/v1/webhook-events/{events[0]['id']}/replay",
                               headers=tenant.headers)
    assert replay.status_code == 202, replay.text
    assert_error(await client.post("/v1/webhook-events/not-a-uuid/replay",
                                   headers=tenant.headers), 404)
    assert_error(await client.post(
        "/v1/webhook-events/00000000-0000-0000-0000-000000000000/replay",
        headers=tenant.headers), 404)
    trail = await client.get(f"/v1/audit-log?entity_type=webhook_event&entity_id={events[0]['id']}",
                             headers=tenant.headers)
    assert [e["action"] for e in trail.json()["data"]] == ["webhook_event.replayed"]


async def test_cli_replays_dead_events(client, make_tenant):
    import asyncio

    from sqlalchemy import update

    from core.runtime import get_runtime
    from owner.tenants.service import lookup
    from tenant.webhooks.models import WebhookEvent
    from tests.integration.test_cli import run_cli

    tenant = await sandbox_tenant(client, make_tenant)
    for n in range(2):
        body = event_body("noise.event", {"id": f"d{n}"})
        await client.post(f"/webhooks/{tenant.slug}/sandbox", content=body, headers=signed(body))
    context = await lookup(get_runtime(), slug=tenant.slug)
    async with get_runtime().tenant_session(context.db_url) as session:
        await session.execute(update(WebhookEvent).values(status="dead", attempts=16,
                                                          last_error="boom"))
    result = await asyncio.to_thread(run_cli, ["webhooks", "replay", "--tenant", tenant.slug])
    assert result.returncode == 0, result.stderr
    assert "replayed 2 event(s)" in result.stdout
    events = await inbox(client, tenant)
    assert {(e["status"], e["attempts"], e["last_error"]) for e in events} == {
        ("received", 0, None)}
    missing = await asyncio.to_thread(run_cli, ["webhooks", "replay", "--tenant", "nobody-x"])
    assert missing.returncode != 0
