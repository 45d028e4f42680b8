"""Refunds started from Paymesh (SPEC 3a, T11): ``POST /v1/orders/{id}/refunds`` against
the real sandbox gateway (served in-process, see ``gateway``), ``mark-refunded`` for cash.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.integration.test_orders_support import (
    assert_error,
    checkout,
    configure,
    gateway,  # noqa: F401 - fixture
    get_order,
    order,
    product,
    succeed,
    tenant_db,
)
from tests.reports_check import assert_reports_agree
from tests.workers.helpers import ledger_for, sandbox_shop
from tests.workers.sandbox_events import SANDBOX_KEY, event_body
from tests.workers.test_payment_states import _apply

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("gateway")]

SUCCESS_CARD = "4242424242424242"


async def paid_order(client: Any, tenant: Any, items: list[dict[str, Any]] | None = None,
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    """An order paid at the sandbox gateway (its hosted page) and settled in Paymesh."""
    made = await order(client, tenant, items)
    started = await checkout(client, tenant, made["id"])
    assert started.status_code == 201, started.text
    payment = started.json()["payment"]
    page = httpx.URL(started.json()["redirect_url"]).path
    paid = await client.post(page, data={"card_number": SUCCESS_CARD})
    assert paid.status_code == 303, paid.text
    assert await succeed(tenant.slug, payment) is True
    return made, payment


async def refund(client: Any, tenant: Any, order_id: str, key: str | None = None,
                 **body: Any) -> httpx.Response:
    return await client.post(f"/v1/orders/{order_id}/refunds", json=body,
                             headers={**tenant.headers,
                                      "Idempotency-Key": key or uuid.uuid4().hex})


async def confirm(client: Any, tenant: Any, answer: httpx.Response) -> dict[str, Any]:
    """The sandbox answered the refund ``pending``: its gateway delivers the signed
    ``refund.succeeded`` webhook it queued, the worker processes it; the refund as the API
    then shows it."""
    from core.runtime import get_runtime
    from owner.tenants.service import lookup
    from providers.sandbox import store
    from providers.sandbox.gateway import deliver_webhook
    from tenant.webhooks.processing import process

    assert answer.status_code == 201, answer.text
    made = answer.json()
    assert (made["status"], made["completed_at"]) == ("pending", None), made
    runtime = get_runtime()
    for delivery_id in await store.pending_deliveries(older_than_seconds=0,
                                                         limit=1_000_000):
        delivery = await store.load_delivery(delivery_id)
        if delivery is None or made["provider_refund_id"] not in delivery.body:
            continue
        assert delivery.url.endswith(f"/webhooks/{tenant.slug}/sandbox")
        await deliver_webhook(delivery_id, runtime.http)
        async with tenant_db(tenant.slug) as session:
            inbox_id = (await session.execute(text(
                "SELECT id FROM webhook_events WHERE provider = 'sandbox' "
                "AND provider_event_id = :e"), {"e": delivery.event_id})).scalar_one()
        context = await lookup(runtime, slug=tenant.slug)
        assert await process(runtime, context, inbox_id) == "processed"
        break
    else:
        raise AssertionError(f"the gateway queued no webhook for refund {made}")
    response = await client.get(f"/v1/refunds/{made['id']}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def refunds_of(client: Any, tenant: Any, order_id: str) -> list[dict[str, Any]]:
    response = await client.get("/v1/refunds", headers=tenant.headers,
                                params={"order_id": order_id, "limit": 100})
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def trail(client: Any, tenant: Any, refund_id: str) -> list[str]:
    response = await client.get("/v1/audit-log", headers=tenant.headers,
                                params={"entity_type": "refund", "entity_id": refund_id})
    assert response.status_code == 200, response.text
    return sorted(e["action"] for e in response.json()["data"])


async def receipts(slug: str) -> list[tuple[str, str]]:
    from sqlalchemy import select

    from tenant.notifications.models import Notification

    async with tenant_db(slug) as session:
        rows = (await session.execute(select(Notification.template, Notification.dedupe_key)
                                      .order_by(Notification.created_at))).all()
    return [(t, k) for t, k in rows if t == "refund_receipt"]


async def test_partial_refunds_up_to_the_capture_then_nothing_left(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "refund")
    made, payment = await paid_order(client, tenant)
    total = made["total"]
    key = uuid.uuid4().hex

    first = await refund(client, tenant, made["id"], key, amount=2_000,
                         reason="requested_by_customer")
    assert first.status_code == 201, first.text
    sent = first.json()
    assert (sent["status"], sent["amount"], sent["currency"], sent["provider"], sent["reason"],
            sent["order_id"], sent["keep_access"]) == (
        "pending", 2_000, "USD", "sandbox", "requested_by_customer", made["id"], False)
    assert sent["provider_refund_id"] and sent["payment_id"]
    # nothing has moved until the gateway's signed webhook says the money went back
    assert (await get_order(client, tenant, made["id"]))["amount_refunded"] == 0
    one = await confirm(client, tenant, first)
    assert (one["status"], one["provider_refund_id"]) == ("succeeded", sent["provider_refund_id"])
    assert one["completed_at"]
    state = await get_order(client, tenant, made["id"])
    assert (state["status"], state["payment_status"], state["amount_refunded"]) == (
        "partially_refunded", "partially_refunded", 2_000)

    # the same request again: the same refund, not a second one
    again = await refund(client, tenant, made["id"], key, amount=2_000,
                         reason="requested_by_customer")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == one  # the refund as it is now
    # the sandbox's own webhook for it matches the row: no second row, no second posting
    assert await _apply(client, tenant, event_body("refund.succeeded", {
        "id": one["provider_refund_id"], "payment_id": payment["provider_payment_id"],
        "amount": 2_000, "currency": "USD"})) == "processed"
    assert len(await refunds_of(client, tenant, made["id"])) == 1

    rest = await refund(client, tenant, made["id"])  # no amount: all that is left
    # what is pending holds its amount: nothing more can be refunded meanwhile
    assert_error(await refund(client, tenant, made["id"], amount=1), 422,
                 "amount_exceeds_refundable")
    done = await confirm(client, tenant, rest)
    assert (done["status"], done["amount"]) == ("succeeded", total - 2_000)
    state = await get_order(client, tenant, made["id"])
    assert (state["status"], state["payment_status"], state["amount_refunded"]) == (
        "refunded", "refunded", total)
    error = assert_error(await refund(client, tenant, made["id"], amount=1), 422,
                         "amount_exceeds_refundable")
    assert error["param"] == "amount"
    assert_error(await refund(client, tenant, made["id"]), 422, "amount_exceeds_refundable")

    kinds = sorted(t["kind"] for t in await ledger_for(client, tenant, made["id"]))
    assert kinds == ["payment.captured", "refund.succeeded", "refund.succeeded"]
    assert await receipts(tenant.slug) == [("refund_receipt", f"refund_receipt:{one['id']}"),
                                           ("refund_receipt",
                                            f"refund_receipt:{done['id']}")]
    assert await trail(client, tenant, one["id"]) == [
        "refund.created", "refund.sent", "refund.succeeded"]
    report = await assert_reports_agree(client, tenant)
    assert (report["totals"]["gross"], report["totals"]["refunds"]) == (total, total)


async def test_concurrent_refunds_never_add_up_past_the_capture(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "refundrace")
    made, _ = await paid_order(client, tenant)
    total = made["total"]  # 5000
    answers = await asyncio.gather(*(refund(client, tenant, made["id"], amount=2_000)
                                     for _ in range(6)))
    accepted = [a for a in answers if a.status_code == 201]
    for a in answers:
        if a.status_code != 201:
            assert_error(a, 422, "amount_exceeds_refundable")
    assert sum(a.json()["amount"] for a in accepted) <= total
    assert len(accepted) == total // 2_000
    assert {a.json()["status"] for a in accepted} == {"pending"}
    for answer in accepted:
        assert (await confirm(client, tenant, answer))["status"] == "succeeded"
    state = await get_order(client, tenant, made["id"])
    assert state["amount_refunded"] == 2_000 * len(accepted)


async def test_nothing_captured_or_a_dispute_open_refuses(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "refundno")
    unpaid = await order(client, tenant)
    assert_error(await refund(client, tenant, unpaid["id"]), 409, "order_not_refundable")
    assert_error(await refund(client, tenant, str(uuid.uuid4())), 404)
    made, payment = await paid_order(client, tenant)
    for body in ({"amount": 0}, {"amount": -5}, {"amount": 1.5}, {"amount": 10**13},
                 {"amount": "10"}, {"items": [{"order_item_id": str(uuid.uuid4()),
                                               "quantity": 1}]},
                 {"items": [{"order_item_id": "x", "quantity": 1}]}, {"nope": 1}):
        response = await refund(client, tenant, made["id"], **body)
        assert 400 <= response.status_code < 500, (body, response.text)
        assert_error(response, response.status_code)
    assert await refunds_of(client, tenant, made["id"]) == []

    assert await _apply(client, tenant, event_body("dispute.created", {
        "id": f"dp_{made['id'][:8]}", "payment_id": payment["provider_payment_id"],
        "amount": made["total"], "currency": "USD", "status": "needs_response",
        "reason": "fraudulent"})) == "processed"
    assert_error(await refund(client, tenant, made["id"], amount=100), 409, "dispute_open")
    assert await refunds_of(client, tenant, made["id"]) == []


async def test_a_refund_the_provider_refuses_fails_and_frees_its_amount(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "refundrej")
    made, payment = await paid_order(client, tenant)
    # 2000 refunded at the gateway itself, not (yet) reported to Paymesh
    outside = await client.post("/sandbox/api/v1/refunds",
                                json={"payment_id": payment["provider_payment_id"],
                                      "amount": 2_000, "currency": "USD"},
                                headers={"Authorization": f"Bearer {SANDBOX_KEY}"})
    assert outside.status_code == 200, outside.text
    refused = await refund(client, tenant, made["id"])  # all 5000: the gateway says no
    assert refused.status_code == 201, refused.text
    failed = refused.json()
    assert failed["status"] == "failed" and failed["provider_refund_id"] is None
    assert "exceeds" in failed["failure_reason"] or "refundable" in failed["failure_reason"]
    assert SANDBOX_KEY not in failed["failure_reason"]
    assert await trail(client, tenant, failed["id"]) == ["refund.created", "refund.failed"]
    state = await get_order(client, tenant, made["id"])
    assert (state["status"], state["amount_refunded"]) == ("paid", 0)
    assert [t["kind"] for t in await ledger_for(client, tenant, made["id"])] == [
        "payment.captured"]
    # the amount is refundable again
    ok = await refund(client, tenant, made["id"], amount=made["total"] - 2_000)
    assert (await confirm(client, tenant, ok))["status"] == "succeeded"


async def test_cash_refund_is_manual_until_marked_refunded(client, make_tenant):
    tenant = await make_tenant("refundcash")
    await configure(client, tenant, "cash")
    made = await order(client, tenant)
    paid = await client.post(f"/v1/orders/{made['id']}/mark-paid", headers=tenant.headers)
    assert paid.status_code == 200, paid.text

    created = await refund(client, tenant, made["id"], reason="changed mind")
    assert created.status_code == 201, created.text
    manual = created.json()
    assert (manual["status"], manual["provider"], manual["amount"],
            manual["provider_refund_id"]) == ("manual_required", "cash", made["total"], None)
    # it holds the amount: nothing more to refund meanwhile
    assert_error(await refund(client, tenant, made["id"], amount=1), 422,
                 "amount_exceeds_refundable")
    assert (await get_order(client, tenant, made["id"]))["amount_refunded"] == 0

    key = {**tenant.headers, "Idempotency-Key": uuid.uuid4().hex}
    marked = await client.post(f"/v1/refunds/{manual['id']}/mark-refunded", headers=key)
    assert marked.status_code == 200, marked.text
    assert marked.json()["status"] == "succeeded" and marked.json()["completed_at"]
    replay = await client.post(f"/v1/refunds/{manual['id']}/mark-refunded", headers=key)
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json() == marked.json()
    assert_error(await client.post(f"/v1/refunds/{manual['id']}/mark-refunded",
                                   headers=tenant.headers), 409, "refund_not_manual")
    assert_error(await client.post(f"/v1/refunds/{uuid.uuid4()}/mark-refunded",
                                   headers=tenant.headers), 404)
    state = await get_order(client, tenant, made["id"])
    assert (state["status"], state["payment_status"], state["amount_refunded"]) == (
        "refunded", "refunded", made["total"])
    kinds = sorted(t["kind"] for t in await ledger_for(client, tenant, made["id"]))
    assert kinds == ["payment.cash_received", "refund.succeeded"]
    assert await trail(client, tenant, manual["id"]) == [
        "refund.created", "refund.marked_refunded", "refund.succeeded"]
    assert await receipts(tenant.slug) == [("refund_receipt",
                                            f"refund_receipt:{manual['id']}")]
    report = await assert_reports_agree(client, tenant)
    assert [(g["key"], g["refunds"]) for g in report["groups"]] == [("USD", made["total"])]


async def test_a_provider_refund_cannot_be_marked_refunded(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "refundmark")
    made, _ = await paid_order(client, tenant)
    done = await refund(client, tenant, made["id"], amount=100)
    assert done.status_code == 201, done.text
    assert_error(await client.post(f"/v1/refunds/{done.json()['id']}/mark-refunded",
                                   headers=tenant.headers), 409, "refund_not_manual")


async def test_returned_items_come_back_into_stock(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "refundstock")
    widget = await product(client, tenant, stock=10, price=1_000)
    made, _ = await paid_order(client, tenant, [{"product_id": widget["id"], "quantity": 3}])
    item_id = made["items"][0]["id"]

    async def stock() -> int:
        response = await client.get(f"/v1/products/{widget['id']}", headers=tenant.headers)
        return int(response.json()["stock"])

    assert await stock() == 7
    returned = await refund(client, tenant, made["id"], amount=1_000,
                            items=[{"order_item_id": item_id, "quantity": 1}])
    assert await stock() == 7  # back in stock when the refund succeeds, not before
    assert (await confirm(client, tenant, returned))["status"] == "succeeded"
    assert await stock() == 8
    # more units than are left to return: refused, nothing changes
    assert_error(await refund(client, tenant, made["id"], amount=100,
                              items=[{"order_item_id": item_id, "quantity": 3}]), 422)
    # a partial refund without items restocks nothing
    await confirm(client, tenant, await refund(client, tenant, made["id"], amount=500))
    assert await stock() == 8
    # the full rest: every unit not returned yet comes back
    await confirm(client, tenant, await refund(client, tenant, made["id"]))
    assert await stock() == 10

    kept = await paid_order(client, tenant, [{"product_id": widget["id"], "quantity": 2}])
    assert await stock() == 8
    no = await refund(client, tenant, kept[0]["id"], restock=False)
    assert (await confirm(client, tenant, no))["status"] == "succeeded"
    assert await stock() == 8


class _Down(httpx.AsyncBaseTransport):
    """The app's outgoing HTTP, with the sandbox's refund endpoint unreachable while
    ``down`` (a network failure: nothing reaches the gateway)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.down = inner, True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down and request.url.path.endswith("/sandbox/api/v1/refunds"):
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


@pytest.fixture
async def refunds_down(app):  # type: ignore[no-untyped-def]
    """The sandbox's refund endpoint unreachable for tenants made from now on (their
    provider instances are built on this client) until ``.down = False``."""
    from tests.integration.test_orders_support import RoutingTransport

    runtime = app.state.runtime
    original = runtime.http
    flaky = _Down(RoutingTransport(app, runtime.settings.public_url))
    runtime.http = httpx.AsyncClient(transport=flaky, timeout=30)
    try:
        yield flaky
    finally:
        await runtime.http.aclose()
        runtime.http = original


async def test_an_unreachable_provider_leaves_the_refund_pending_until_retried(
        client, make_tenant, refunds_down):
    flaky = refunds_down
    tenant = await sandbox_shop(client, make_tenant, "refunddown")
    made, _ = await paid_order(client, tenant)
    key = uuid.uuid4().hex
    down = await refund(client, tenant, made["id"], key, amount=1_500)
    error = assert_error(down, 503, "provider_unavailable")
    assert "pending" in error["message"]
    held, = await refunds_of(client, tenant, made["id"])
    assert (held["status"], held["provider_refund_id"]) == ("pending", None)
    # it holds its amount meanwhile
    assert_error(await refund(client, tenant, made["id"], amount=made["total"]), 422,
                 "amount_exceeds_refundable")
    assert (await get_order(client, tenant, made["id"]))["amount_refunded"] == 0

    flaky.down = False
    retried = await refund(client, tenant, made["id"], key, amount=1_500)
    assert retried.status_code == 201, retried.text
    assert retried.headers["Idempotent-Replayed"] == "true"
    sent = retried.json()
    assert (sent["id"], sent["status"]) == (held["id"], "pending")
    assert sent["provider_refund_id"]
    done = await confirm(client, tenant, retried)
    assert (done["id"], done["status"]) == (held["id"], "succeeded")
    assert len(await refunds_of(client, tenant, made["id"])) == 1
    assert (await get_order(client, tenant, made["id"]))["amount_refunded"] == 1_500


async def test_a_provider_webhook_ahead_of_the_answer_completes_the_same_refund(
        client, make_tenant, refunds_down):
    tenant = await sandbox_shop(client, make_tenant, "refundearly")
    made, payment = await paid_order(client, tenant)
    key = uuid.uuid4().hex
    assert_error(await refund(client, tenant, made["id"], key, amount=1_200), 503,
                 "provider_unavailable")
    held, = await refunds_of(client, tenant, made["id"])
    # the provider's webhook for it arrives before Paymesh recorded the provider's answer
    assert await _apply(client, tenant, event_body("refund.succeeded", {
        "id": "re_early", "payment_id": payment["provider_payment_id"], "amount": 1_200,
        "currency": "USD"})) == "processed"
    done, = await refunds_of(client, tenant, made["id"])
    assert (done["id"], done["status"], done["provider_refund_id"]) == (
        held["id"], "succeeded", "re_early")
    refunds_down.down = False
    again = await refund(client, tenant, made["id"], key, amount=1_200)
    assert again.status_code == 201 and again.json() == done  # not sent a second time
    assert (await get_order(client, tenant, made["id"]))["amount_refunded"] == 1_200
    kinds = sorted(t["kind"] for t in await ledger_for(client, tenant, made["id"]))
    assert kinds == ["payment.captured", "refund.succeeded"]
