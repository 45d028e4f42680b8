"""Outages: Redis down, Postgres restarting, a webhook that never came (section 4, T10)."""

from __future__ import annotations

import asyncio

import threading

import uuid

import httpx
import pytest

from core.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from tests.conftest import TEST_DATA, _wait_http, start_paymesh, stop_process
from tests.conftest import worker_id, worker_tag
from tests.integration.test_cli import run_cli
from tests.workers.helpers import (
    event_counts,
    open_order,
    order,
    sandbox_shop,
    success_event,
    wait_until,
)
from tests.workers.sandbox_events import SANDBOX_KEY, event_body, signed

pytestmark = pytest.mark.asyncio


async def test_redis_down_events_wait_in_the_inbox_and_are_swept(client, make_tenant,
                                                                  live_api):
    tenant = await sandbox_shop(client, make_tenant, "redis")
    orders = [await open_order(client, tenant, amount=3_000 + i) for i in range(100)]
    port, api_port = free_port(), free_port()
    redis_dir = TEST_DATA / f"redis-outage-{worker_tag()}"
    redis = EmbeddedRedis.start(redis_dir, persist=False, port=port)
    env = {"PAYMESH_REDIS_URL": f"redis://127.0.0.1:{port}/0",
           "PAYMESH_PUBLIC_URL": f"http://127.0.0.1:{api_port}"}
    api = start_paymesh(["run", "--port", str(api_port)], env, "api-redis-outage")
    worker = None
    try:
        _wait_http(f"http://127.0.0.1:{api_port}/healthz", api)
        redis.stop()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}",
                                     timeout=30) as http:
            statuses = []
            for o in orders:
                body = success_event(o)
                response = await http.post(f"/webhooks/{tenant.slug}/sandbox", content=body,
                                           headers=signed(body))
                statuses.append(response.status_code)
        assert statuses == [200] * 100
        assert (await event_counts(client, tenant))["received"] == 100
        redis = EmbeddedRedis.start(redis_dir, persist=False, port=port)
        worker = start_paymesh(["worker", "--processes", "1", "--threads", "8"], env,
                               "worker-redis-outage")
        swept = await asyncio.to_thread(
            run_cli, ["scheduler", "--once", "--job", "sweep_inbox"],
            {**env, "PAYMESH_SWEEP_STUCK_AFTER_SECONDS": "0"})
        assert swept.returncode == 0, swept.stderr
        # every tenant's waiting events are swept; this tenant's 100 are among them
        assert int(swept.stdout.split("sweep_inbox:")[1].split()[0]) >= 100

        async def processed() -> bool:
            return (await event_counts(client, tenant))["processed"] == 100

        await wait_until(processed, 120, "swept events processed")
        for o in orders[:: 10]:
            assert (await order(client, tenant, o["order_id"]))["status"] == "paid"
    finally:
        if worker is not None:
            stop_process(worker)
        stop_process(api)
        redis.stop()


async def test_postgres_restart_during_ingest_acknowledges_only_what_it_stored(
        client, owner_headers, make_tenant, live_api):
    # durable settings: this test crashes the server, and an acknowledged event must survive
    durable = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
    server = EmbeddedPostgres.start(TEST_DATA / f"pg-restart-{worker_id()}", tuning=durable)
    try:
        await _restart_during_ingest(client, owner_headers, make_tenant, live_api, server)
    finally:
        server.stop()


async def _restart_during_ingest(client, owner_headers, make_tenant, live_api,  # noqa: ANN001
                                 server) -> None:  # noqa: ANN001
    name = f"restart-{worker_tag()}"
    created = await client.post("/v1/owner/clusters", headers=owner_headers,
                                json={"name": name, "url": server.url})
    assert created.status_code == 201, created.text
    tenant = await make_tenant("pgr", cluster=name)
    from core.runtime import get_runtime
    from sqlalchemy import update

    from owner.tenants.models import DbCluster

    async with get_runtime().owner_session() as session:  # keep other tests off this server
        await session.execute(update(DbCluster).where(DbCluster.name == name)
                              .values(is_active=False))
    put = await client.put("/v1/providers/sandbox", json={"secret_key": SANDBOX_KEY},
                           headers=tenant.headers)
    assert put.status_code == 200
    results: dict[str, int] = {}
    restarted = threading.Event()

    def restart() -> None:
        server.restart()
        restarted.set()

    async with httpx.AsyncClient(base_url=live_api, timeout=30) as http:
        gate = asyncio.Semaphore(16)

        async def send(n: int) -> None:
            event_id = f"evt_restart_{n}_{uuid.uuid4().hex[:8]}"
            body = event_body("noise.event", {"id": f"x{n}"}, event_id)
            async with gate:
                if n == 100:
                    threading.Thread(target=restart, daemon=True).start()
                try:
                    response = await http.post(f"/webhooks/{tenant.slug}/sandbox",
                                               content=body, headers=signed(body))
                    results[event_id] = response.status_code
                except httpx.HTTPError:
                    results[event_id] = 0

        await asyncio.gather(*[send(n) for n in range(400)])
        assert await asyncio.to_thread(restarted.wait, 60)
        before = dict(results)
        await asyncio.gather(*[send(n) for n in range(1_000, 1_050)])  # the API recovers
        assert [v for k, v in results.items() if k not in before] == [200] * 50
    assert set(results.values()) <= {200, 503, 0}, results
    failures = [k for k, v in results.items() if v != 200]
    stored = set()
    page = 1
    while True:  # the inbox, read after the server is back
        response = await client.get("/v1/webhook-events", headers=tenant.headers,
                                    params={"limit": 100, "page": page})
        if response.status_code == 503:
            await asyncio.sleep(0.5)
            continue
        body = response.json()
        stored |= {e["provider_event_id"] for e in body["data"]}
        if not body["has_more"]:
            break
        page += 1
    acknowledged = {k for k, v in results.items() if v == 200}
    assert acknowledged <= stored
    assert not (set(failures) & stored)
    assert len(acknowledged) > 0


async def test_missed_webhook_is_caught_by_reconciliation(client, make_tenant, live_api):
    tenant = await sandbox_shop(client, make_tenant, "missed")
    o = await open_order(client, tenant, amount=4_200)
    async with httpx.AsyncClient(timeout=30) as http:
        paid = await http.post(o["redirect_url"], data={"card_number": "4242424242424242"})
    assert paid.status_code == 303  # the customer is sent back; we do not follow
    # no worker runs: the gateway's webhook delivery sits in the queue, never sent
    await asyncio.sleep(0.5)
    assert (await order(client, tenant, o["order_id"]))["status"] == "pending_payment"
    result = await asyncio.to_thread(run_cli, ["reconcile", "--tenant", tenant.slug],
                                     {"PAYMESH_RECONCILE_AFTER_SECONDS": "0"})
    assert result.returncode == 0, result.stderr
    assert "reconciled 1 payment" in result.stdout
    state = await order(client, tenant, o["order_id"])
    assert (state["status"], state["payment_status"]) == ("paid", "paid")
