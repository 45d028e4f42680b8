"""Outgoing webhooks (SPEC 3a, T19/T24) through HTTP, real Dramatiq workers and a real
loopback receiver; every delivery is verified with the ``standardwebhooks`` library."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiohttp import web
from standardwebhooks import Webhook

from core.embedded import free_port
from tests.integration.test_orders_support import gateway  # noqa: F401 - fixture
from tests.workers.helpers import open_order, post_event, sandbox_shop, success_event, wait_until
from tests.workers.sandbox_events import event_body

pytestmark = pytest.mark.asyncio
FAST = {"PAYMESH_WEBHOOK_ALLOW_PRIVATE": "1", "PAYMESH_OUTGOING_RETRY_SCHEDULE": "1,1,1"}


class Receiver:
    """A loopback HTTP server: answers the scripted statuses (then 200), keeps requests."""

    def __init__(self) -> None:
        self.port = free_port()
        self.script: list[int] = []
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        return web.Response(status=self.script.pop(0) if self.script else 200)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def of_type(self, kind: str) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for h, b in self.received if json.loads(b)["type"] == kind]


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    assert server.runner is not None
    await server.runner.cleanup()


@pytest.fixture
def allow_private(app):  # type: ignore[no-untyped-def]
    """The API registers loopback receivers (PAYMESH_WEBHOOK_ALLOW_PRIVATE=1)."""
    runtime = app.state.runtime
    saved = runtime.settings
    runtime.settings = dataclasses.replace(saved, webhook_allow_private=True)
    yield
    runtime.settings = saved


async def register(client: Any, tenant: Any, url: str, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/webhook-endpoints", json={"url": url, **body},
                                 headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def deliveries(client: Any, tenant: Any, endpoint_id: str,
                     **params: Any) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries",
                                headers=tenant.headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def new_order(client: Any, tenant: Any) -> dict[str, Any]:
    response = await client.post(
        "/v1/orders", headers={**tenant.headers, "Idempotency-Key": uuid.uuid4().hex},
        json={"customer_email": "p@example.com", "currency": "USD",
              "items": [{"description": "Visit", "quantity": 1, "unit_amount": 1_500}]})
    assert response.status_code == 201, response.text
    return response.json()


async def disabled(client: Any, tenant: Any, endpoint_id: str) -> bool:
    read = await client.get(f"/v1/webhook-endpoints/{endpoint_id}", headers=tenant.headers)
    return read.json()["enabled"] is False  # type: ignore[no-any-return]


def verified(secret: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    wanted = {k.lower(): v for k, v in headers.items() if k.lower().startswith("webhook-")}
    return Webhook(secret).verify(body, wanted)  # type: ignore[no-any-return]


async def test_bad_endpoints_are_refused(client, make_tenant):
    tenant = await make_tenant("ohbad")
    for body, status, code in [
        ({"url": "ftp://example.com/x"}, 422, "url_invalid"),
        ({"url": "not a url"}, 422, "url_invalid"),
        ({"url": "https://example.com/x", "events": ["order.shipped"]}, 422,
         "unknown_event_type"),
        ({"url": "http://127.0.0.1:9/x"}, 422, "url_not_allowed"),
        ({"url": "http://localhost:9/x"}, 422, "url_not_allowed"),
        ({"url": "http://169.254.169.254/latest/meta-data"}, 422, "url_not_allowed"),
        ({"url": "http://10.1.2.3/x"}, 422, "url_not_allowed"),
        ({"url": "http://[::1]/x"}, 422, "url_not_allowed"),
        ({"url": "http://[::ffff:192.168.0.1]/x"}, 422, "url_not_allowed"),
        ({"url": "https://example.com/x", "colour": "red"}, 400, None),
    ]:
        response = await client.post("/v1/webhook-endpoints", json=body,
                                     headers=tenant.headers)
        assert response.status_code == status, (body, response.text)
        if code:
            assert response.json()["error"]["code"] == code, response.text
    listed = await client.get("/v1/webhook-endpoints", headers=tenant.headers)
    assert listed.json()["data"] == []  # nothing was stored
    missing = await client.get(f"/v1/webhook-endpoints/{uuid.uuid4()}", headers=tenant.headers)
    assert missing.status_code == 404
    again = await client.post(f"/v1/webhook-deliveries/{uuid.uuid4()}/redeliver",
                              headers=tenant.headers)
    assert again.status_code == 404


async def test_endpoint_crud_and_secret_shown_once(client, make_tenant, allow_private,
                                                   receiver):
    tenant = await make_tenant("ohcrud")
    made = await register(client, tenant, receiver.url, events=["order.paid"],
                          description="fulfilment")
    assert made["secret"].startswith("whsec_") and len(made["secret"]) >= 6 + 32
    assert (made["url"], made["events"], made["enabled"]) == (receiver.url, ["order.paid"],
                                                              True)
    read = (await client.get(f"/v1/webhook-endpoints/{made['id']}",
                             headers=tenant.headers)).json()
    assert read["secret"] is None
    changed = await client.patch(f"/v1/webhook-endpoints/{made['id']}", headers=tenant.headers,
                                 json={"events": [], "enabled": False})
    assert changed.status_code == 200 and changed.json()["enabled"] is False
    bad = await client.patch(f"/v1/webhook-endpoints/{made['id']}", headers=tenant.headers,
                             json={"events": ["nope"]})
    assert bad.status_code == 422
    gone = await client.delete(f"/v1/webhook-endpoints/{made['id']}", headers=tenant.headers)
    assert gone.status_code == 204
    assert (await client.get(f"/v1/webhook-endpoints/{made['id']}",
                             headers=tenant.headers)).status_code == 404


async def test_paid_and_refunded_orders_are_delivered_signed(
        client, make_tenant, allow_private, receiver, start_worker, gateway):  # noqa: F811
    start_worker(env=FAST)
    tenant = await sandbox_shop(client, make_tenant, "ohpay")
    endpoint = await register(client, tenant, receiver.url)
    only_paid = Receiver()
    await only_paid.start()
    try:
        filtered = await register(client, tenant, only_paid.url, events=["order.paid"])
        o = await open_order(client, tenant, amount=2_000)
        # the customer pays at the sandbox's hosted page; its webhook reaches the door
        page = httpx.URL(o["redirect_url"]).path
        assert (await client.post(page, data={"card_number": "4242424242424242"})
                ).status_code == 303
        assert await post_event(client, tenant, success_event(o)) == 200

        async def paid() -> bool:
            return bool(receiver.of_type("order.paid")) and bool(only_paid.received)

        await wait_until(paid, 60, "order.paid at both endpoints")
        headers, body = receiver.of_type("order.paid")[0]
        event = verified(endpoint["secret"], headers, body)
        assert event["data"]["id"] == o["order_id"] and event["data"]["status"] == "paid"
        assert headers["webhook-id"] == event["id"]
        created = receiver.of_type("order.created")
        assert len(created) == 1 and verified(endpoint["secret"], *created[0])["data"][
            "id"] == o["order_id"]
        # the filtered endpoint got only what it asked for
        assert [verified(filtered["secret"], h, b)["type"] for h, b in only_paid.received] \
            == ["order.paid"]

        refund = await client.post(f"/v1/orders/{o['order_id']}/refunds", json={"amount": 500},
                                   headers={**tenant.headers,
                                            "Idempotency-Key": uuid.uuid4().hex})
        assert refund.status_code == 201, refund.text
        sent = refund.json()
        assert sent["status"] == "pending", refund.text  # until the gateway's webhook
        assert await post_event(client, tenant, event_body("refund.succeeded", {
            "id": sent["provider_refund_id"], "payment_id": o["payment_id"], "amount": 500,
            "currency": "USD", "status": "succeeded"})) == 200

        async def refunded() -> bool:
            return bool(receiver.of_type("refund.succeeded")) and bool(
                receiver.of_type("order.partially_refunded"))

        await wait_until(refunded, 60, "refund.succeeded and order.partially_refunded")
        event = verified(endpoint["secret"], *receiver.of_type("refund.succeeded")[0])
        assert (event["data"]["id"], event["data"]["amount"]) == (refund.json()["id"], 500)
        event = verified(endpoint["secret"], *receiver.of_type("order.partially_refunded")[0])
        assert event["data"]["amount_refunded"] == 500
        log = await deliveries(client, tenant, endpoint["id"], status="succeeded")
        assert {d["event_type"] for d in log} == {"order.created", "order.paid",
                                                  "refund.succeeded",
                                                  "order.partially_refunded"}
        assert all(d["response_status"] == 200 and d["attempt"] == 1 for d in log)
    finally:
        assert only_paid.runner is not None
        await only_paid.runner.cleanup()


async def test_a_failure_is_retried_with_the_same_id_then_redelivered(
        client, make_tenant, allow_private, receiver, start_worker):
    start_worker(env=FAST)
    tenant = await make_tenant("ohretry")
    endpoint = await register(client, tenant, receiver.url)
    receiver.script = [500]
    await new_order(client, tenant)
    await wait_until(lambda: _count(receiver, 2), 60, "a failed try and its retry")
    (first, _), (second, body) = receiver.received
    assert first["webhook-id"] == second["webhook-id"]
    verified(endpoint["secret"], second, body)
    log = await deliveries(client, tenant, endpoint["id"])
    assert [(d["attempt"], d["status"], d["response_status"]) for d in log] == [
        (2, "succeeded", 200), (1, "failed", 500)]
    assert [d["id"] for d in await deliveries(client, tenant, endpoint["id"],
                                               status="failed")] == [log[1]["id"]]
    bad = await client.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries",
                           headers=tenant.headers, params={"status": "lost"})
    assert bad.status_code == 400

    again = await client.post(f"/v1/webhook-deliveries/{log[1]['id']}/redeliver",
                              headers=tenant.headers)
    assert again.status_code == 202, again.text
    assert again.json()["attempt"] == 3
    await wait_until(lambda: _count(receiver, 3), 60, "the redelivery")
    assert receiver.received[2][0]["webhook-id"] == first["webhook-id"]


async def test_rotation_sends_both_signatures_and_410_disables(
        client, make_tenant, allow_private, receiver, start_worker):
    start_worker(env=FAST)
    tenant = await make_tenant("ohrot")
    told = await client.patch("/v1/settings", json={"notification_email": "ops@clinic.test"},
                              headers=tenant.headers)
    assert told.status_code == 200 and told.json()["notification_email"] == "ops@clinic.test"
    endpoint = await register(client, tenant, receiver.url)
    rotated = await client.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret",
                                json={"overlap_seconds": 3600}, headers=tenant.headers)
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != endpoint["secret"] and rotated.json()["previous_secret_expires_at"]
    await new_order(client, tenant)
    await wait_until(lambda: _count(receiver, 1), 60, "a delivery after rotation")
    headers, body = receiver.received[0]
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (endpoint["secret"], new_secret):  # each verifies on its own
        verified(secret, headers, body)
    with pytest.raises(Exception):  # noqa: B017 - a secret never issued does not verify
        verified("whsec_" + "A" * 44, headers, body)

    receiver.script = [410]
    await new_order(client, tenant)
    await wait_until(lambda: _count(receiver, 2), 60, "the delivery answered 410")

    await wait_until(lambda: disabled(client, tenant, endpoint["id"]), 30,
                     "the endpoint disabled")
    read = (await client.get(f"/v1/webhook-endpoints/{endpoint['id']}",
                             headers=tenant.headers)).json()
    assert read["disabled_reason"] == "gone"
    assert await notices(tenant.slug) == [("ops@clinic.test", "webhook_endpoint_disabled")]
    failed = await deliveries(client, tenant, endpoint["id"], status="failed")
    assert [d["response_status"] for d in failed] == [410]
    assert await deliveries(client, tenant, endpoint["id"], status="pending") == []
    await new_order(client, tenant)  # a disabled endpoint gets nothing more
    await asyncio.sleep(2)
    assert len(receiver.received) == 2


async def notices(slug: str) -> list[tuple[str, str]]:
    from sqlalchemy import text

    from tests.integration.test_orders_support import tenant_db

    async with tenant_db(slug) as session:
        return [(r, t) for r, t in (await session.execute(text(
            "SELECT recipient, template FROM notifications "
            "WHERE template = 'webhook_endpoint_disabled' ORDER BY created_at"))).all()]


async def test_failing_past_the_limit_disables_and_tells_the_tenant(
        client, make_tenant, allow_private, receiver, start_worker):
    """Five days of failures in production (``PAYMESH_OUTGOING_DISABLE_AFTER_SECONDS``);
    three seconds here."""
    start_worker(env={**FAST, "PAYMESH_OUTGOING_RETRY_SCHEDULE": "2,2,2,2,2,2",
                      "PAYMESH_OUTGOING_DISABLE_AFTER_SECONDS": "3"})
    tenant = await make_tenant("ohfail")
    assert (await client.patch("/v1/settings", json={"notification_email": "not-an-email"},
                               headers=tenant.headers)).status_code == 400
    assert (await client.patch("/v1/settings", json={"notification_email": "dev@shop.test"},
                               headers=tenant.headers)).status_code == 200
    endpoint = await register(client, tenant, receiver.url)
    receiver.script = [500] * 20
    await new_order(client, tenant)

    await wait_until(lambda: disabled(client, tenant, endpoint["id"]), 60,
                     "the endpoint disabled after failing past the limit")
    read = (await client.get(f"/v1/webhook-endpoints/{endpoint['id']}",
                             headers=tenant.headers)).json()
    assert read["disabled_reason"] == "failing"
    assert await notices(tenant.slug) == [("dev@shop.test", "webhook_endpoint_disabled")]
    tried = len(receiver.received)
    assert 2 <= tried < 20  # retried meanwhile, then no more
    await asyncio.sleep(3)
    assert len(receiver.received) == tried


async def test_a_crash_between_commit_and_enqueue_still_delivers(
        client, app, make_tenant, allow_private, receiver, start_worker):
    from workers.scheduler import run_once

    tenant = await make_tenant("ohcrash")
    endpoint = await register(client, tenant, receiver.url)
    runtime = app.state.runtime
    enqueuer = runtime.enqueuer
    runtime.enqueuer = None  # the broker unreachable: the commit stands, no message
    try:
        made = await new_order(client, tenant)
    finally:
        runtime.enqueuer = enqueuer
    pending = await deliveries(client, tenant, endpoint["id"], status="pending")
    assert len(pending) == 1
    start_worker(env=FAST)
    await asyncio.sleep(1)
    assert receiver.received == []  # nothing sent it
    saved = runtime.settings
    runtime.settings = dataclasses.replace(saved, sweep_stuck_after_seconds=0)
    try:
        (result,) = await run_once(runtime, {"deliver_outgoing_webhooks"})
    finally:
        runtime.settings = saved
    # (other tests may leave tenants on servers they stopped: only this one's matters)
    assert result["count"] >= 1 and tenant.slug not in [s for s, _ in result["failed"]]
    await wait_until(lambda: _count(receiver, 1), 60, "the swept delivery")
    assert verified(endpoint["secret"], *receiver.received[0])["data"]["id"] == made["id"]


async def test_a_rolled_back_change_sends_nothing(client, make_tenant, allow_private,
                                                  receiver):
    from core.runtime import get_runtime
    from owner.tenants.service import lookup
    from tenant.outgoing import events
    from tenant.outgoing.models import OutgoingEvent

    tenant = await make_tenant("ohroll")
    await register(client, tenant, receiver.url)
    made = await new_order(client, tenant)
    context = await lookup(get_runtime(), slug=tenant.slug)

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with get_runtime().tenant_session(context.db_url) as session:
            assert await events.orders(session, events.EventType.ORDER_CANCELLED,
                                       [uuid.UUID(made["id"])]) == 1
            raise Boom
    from sqlalchemy import select

    async with get_runtime().tenant_session(context.db_url) as session:
        kinds = (await session.scalars(select(OutgoingEvent.type))).all()
    assert kinds == ["order.created"]


async def test_delivery_refuses_a_name_that_resolves_to_loopback(
        client, make_tenant, allow_private, receiver, start_worker):
    """Registered while private targets were allowed; the worker (allow-private off)
    resolves ``localhost`` at connect time and refuses it."""
    start_worker(env={"PAYMESH_OUTGOING_RETRY_SCHEDULE": "1"})
    tenant = await make_tenant("ohssrf")
    endpoint = await register(client, tenant, f"http://localhost:{receiver.port}/hooks")
    await new_order(client, tenant)

    async def refused() -> bool:
        return len(await deliveries(client, tenant, endpoint["id"], status="exhausted")) == 1

    await wait_until(refused, 60, "the delivery refused at connect time")
    log = await deliveries(client, tenant, endpoint["id"])
    assert [d["status"] for d in log] == ["exhausted", "failed"]
    assert all(d["error"].startswith("url_not_allowed") and d["response_status"] is None
               for d in log)
    assert receiver.received == []


async def _count_async(receiver: Receiver, n: int) -> bool:
    return len(receiver.received) >= n


def _count(receiver: Receiver, n: int):  # type: ignore[no-untyped-def]
    return _count_async(receiver, n)


# ----------------------------------------------------------------------------- batches


async def _backlog(client: Any, make_tenant: Any, receiver: Receiver, stem: str,
                   orders: int) -> tuple[Any, Any, list[uuid.UUID]]:
    """A tenant whose endpoint has ``orders`` pending ``order.created`` deliveries (no
    worker running: their messages wait in the queue); (tenant, its context, delivery
    ids oldest first)."""
    from core.runtime import get_runtime
    from owner.tenants.service import lookup

    tenant = await make_tenant(stem)
    endpoint = await register(client, tenant, receiver.url, events=["order.created"])
    for _ in range(orders):
        await new_order(client, tenant)
    listed = await deliveries(client, tenant, endpoint["id"])
    assert len(listed) == orders and {d["status"] for d in listed} == {"pending"}
    ids = [uuid.UUID(d["id"]) for d in sorted(listed, key=lambda d: d["created_at"])]
    return tenant, await lookup(get_runtime(), slug=tenant.slug), ids


async def _statuses(client: Any, tenant: Any) -> dict[uuid.UUID, tuple[str, int]]:
    endpoint = (await client.get("/v1/webhook-endpoints", headers=tenant.headers)).json()
    listed = await deliveries(client, tenant, endpoint["data"][0]["id"])
    return {uuid.UUID(d["id"]): (d["status"], d["attempt"]) for d in listed}


async def test_one_message_sends_the_endpoints_backlog_in_order(client, make_tenant,
                                                                allow_private, receiver):
    """A message sends its own delivery, then the due ones waiting for the same endpoint,
    oldest event first, and records them; their own messages then find them done."""
    from core.runtime import get_runtime
    from tenant.outgoing.delivery import deliver

    tenant, context, ids = await _backlog(client, make_tenant, receiver, "ohbatch", 5)
    outcome = await deliver(get_runtime(), context, ids[0])
    assert (outcome.status, outcome.next_id, outcome.resend) == ("succeeded", None, ())
    sent = [json.loads(body)["data"]["id"] for _, body in receiver.received]
    events = [h["webhook-id"] for h, _ in receiver.received]
    assert len(sent) == 5 and len(set(events)) == 5
    created = [o["id"] for o in (await client.get(
        "/v1/orders", headers=tenant.headers, params={"limit": 10})).json()["data"]]
    assert sent == sorted(sent, key=created[::-1].index)  # oldest order first
    assert {s for s, _ in (await _statuses(client, tenant)).values()} == {"succeeded"}
    for delivery_id in ids[1:]:  # the batched deliveries' own messages
        assert (await deliver(get_runtime(), context, delivery_id)).status == "skipped"
    assert len(receiver.received) == 5


async def test_a_batch_stops_at_a_failure_and_gives_the_rest_back(client, make_tenant,
                                                                  allow_private, receiver,
                                                                  monkeypatch):
    """The first failure ends the batch: it is retried on its schedule, the deliveries
    not yet sent are unclaimed and their messages sent again; the same when the batch's
    time is up."""
    from core.runtime import get_runtime
    from tenant.outgoing import delivery
    from tenant.outgoing.delivery import deliver

    tenant, context, ids = await _backlog(client, make_tenant, receiver, "ohstop", 5)
    receiver.script = [200, 500]
    outcome = await deliver(get_runtime(), context, ids[0])
    assert outcome.status == "succeeded" and outcome.next_id is not None
    assert len(receiver.received) == 2 and len(outcome.resend) == 3
    statuses = await _statuses(client, tenant)
    assert sorted(s for s, _ in statuses.values()) == [
        "failed", "pending", "pending", "pending", "pending", "succeeded"]
    assert statuses[outcome.next_id] == ("pending", 2)  # the failed one's retry
    assert set(outcome.resend) <= {i for i, (s, _) in statuses.items() if s == "pending"}
    # given back means claimable at once by their own messages
    again = await deliver(get_runtime(), context, outcome.resend[0])
    assert again.status == "succeeded" and again.resend == ()
    assert len(receiver.received) == 2 + 3  # the rest went with it, as a batch

    tenant, context, ids = await _backlog(client, make_tenant, receiver, "ohbudget", 3)
    monkeypatch.setattr(delivery, "BATCH_BUDGET_SECONDS", 0.0)
    received = len(receiver.received)
    outcome = await deliver(get_runtime(), context, ids[0])
    assert outcome.status == "succeeded" and len(outcome.resend) == 2
    assert len(receiver.received) == received + 1
