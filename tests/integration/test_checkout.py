"""Checkout (T7) and payment settlement: attempts, reuse/supersede, failover, circuit
breaker, provider events, cash, the payments list — through HTTP and the worker API."""

from __future__ import annotations

import uuid

import pytest

from core import circuit
from core.embedded import free_port
from core.redis import get_redis
from tests.integration.test_orders_support import (
    TEST_ACTOR,
    assert_error,
    checkout,
    configure,
    fail,
    gateway,  # noqa: F401 - fixture
    get_order,
    new_key,
    order,
    succeed,
    tenant_db,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("gateway")]


async def payments_of(client, tenant, order_id: str) -> list[dict]:  # noqa: ANN001
    response = await client.get(f"/v1/payments?order_id={order_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return sorted(response.json()["data"], key=lambda p: p["attempt_number"])


async def test_sandbox_checkout_reuse_and_supersede(client, make_tenant):
    tenant = await make_tenant()
    await configure(client, tenant)
    await configure(client, tenant, "cash", priority=500)
    made = await order(client, tenant)
    first = await checkout(client, tenant, made["id"])
    assert first.status_code == 201, first.text
    body = first.json()
    payment = body["payment"]
    assert payment["provider"] == "sandbox" and payment["status"] == "pending"
    assert payment["amount"] == made["total"] and payment["currency"] == "USD"
    assert payment["provider_payment_id"].startswith("pay_")
    assert "/sandbox/checkout/" in body["redirect_url"] and body["reused"] is False
    assert (await get_order(client, tenant, made["id"]))["payment_status"] == "pending"

    again = await checkout(client, tenant, made["id"])
    assert again.status_code == 200 and again.json()["reused"] is True
    assert again.json()["payment"]["id"] == payment["id"]

    cash = await checkout(client, tenant, made["id"], provider="cash")
    assert cash.status_code == 201, cash.text
    assert cash.json()["redirect_url"] is None
    assert cash.json()["instructions"]["method"] == "cash"
    attempts = await payments_of(client, tenant, made["id"])
    assert [(p["provider"], p["status"]) for p in attempts] == [
        ("sandbox", "superseded"), ("cash", "pending")]

    # the customer still pays the first link: the money is applied, the other voided
    assert await succeed(tenant.slug, payment) is True
    paid = await get_order(client, tenant, made["id"])
    assert paid["status"] == "paid" and paid["payment_status"] == "paid"
    attempts = await payments_of(client, tenant, made["id"])
    assert [p["status"] for p in attempts] == ["succeeded", "superseded"]
    assert attempts[0]["fee_amount"] == 30
    assert_error(await checkout(client, tenant, made["id"]), 409, "order_already_paid")
    assert_error(await client.post(f"/v1/orders/{made['id']}/mark-paid",
                                   headers=tenant.headers), 409, "order_already_paid")


async def test_checkout_is_idempotent(client, make_tenant):
    tenant = await make_tenant()
    await configure(client, tenant)
    made = await order(client, tenant)
    headers = {**tenant.headers, "Idempotency-Key": new_key()}
    first = await client.post(f"/v1/orders/{made['id']}/checkout", json={}, headers=headers)
    again = await client.post(f"/v1/orders/{made['id']}/checkout", json={}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true" and again.content == first.content
    assert_error(await client.post(f"/v1/orders/{made['id']}/checkout",
                                   json={"provider": "cash"}, headers=headers), 422,
                 "idempotency_key_reused")
    assert len(await payments_of(client, tenant, made["id"])) == 1


async def test_settlement_events_are_idempotent_and_order_independent(client, make_tenant):
    from tenant.payments import service as payments
    from tenant.payments.errors import UnknownPaymentAttempt

    tenant = await make_tenant()
    await configure(client, tenant)
    made = await order(client, tenant)
    payment = (await checkout(client, tenant, made["id"])).json()["payment"]
    async with tenant_db(tenant.slug) as session:
        found = await payments.find_attempt(session, "sandbox", payment["provider_payment_id"])
        assert found is not None and found.status == "pending" and found.id == payment["id"]
        assert await payments.find_attempt(session, "sandbox", "pay_nope") is None
        with pytest.raises(UnknownPaymentAttempt):
            await payments.mark_payment_succeeded(
                session, provider="sandbox", provider_payment_id="pay_nope", amount=1,
                currency="USD", fee_amount=None, actor=TEST_ACTOR)
    assert await succeed(tenant.slug, payment) is True
    assert await succeed(tenant.slug, payment) is False
    assert await fail(tenant.slug, payment) is False  # a late failure changes nothing
    after = await get_order(client, tenant, made["id"])
    assert after["status"] == "paid" and after["paid_at"] is not None
    trail = (await client.get(f"/v1/audit-log?entity_type=payment&entity_id={payment['id']}",
                              headers=tenant.headers)).json()["data"]
    assert [e["action"] for e in trail] == ["payment.succeeded", "payment.checkout_started"]


async def test_failure_then_success_on_a_retry(client, make_tenant):
    tenant = await make_tenant()
    await configure(client, tenant)
    made = await order(client, tenant)
    payment = (await checkout(client, tenant, made["id"])).json()["payment"]
    assert await fail(tenant.slug, payment) is True
    assert await fail(tenant.slug, payment) is False
    failed = await get_order(client, tenant, made["id"])
    assert failed["status"] == "payment_failed" and failed["payment_status"] == "not_paid"
    retry = (await checkout(client, tenant, made["id"])).json()["payment"]
    assert retry["id"] != payment["id"] and retry["attempt_number"] == 2
    assert await succeed(tenant.slug, retry) is True
    assert (await get_order(client, tenant, made["id"]))["status"] == "paid"


async def test_amount_mismatch_and_duplicate_charges_are_flagged(client, make_tenant):
    tenant = await make_tenant()
    await configure(client, tenant)
    await configure(client, tenant, "cash", priority=500)
    made = await order(client, tenant)
    first = (await checkout(client, tenant, made["id"])).json()["payment"]
    assert await succeed(tenant.slug, first, amount=first["amount"] - 1) is True
    assert await succeed(tenant.slug, first, amount=first["amount"] - 1) is False
    flagged = await get_order(client, tenant, made["id"])
    assert flagged["status"] == "pending_payment" and "payment_amount_mismatch" in flagged["flags"]
    attempt = (await payments_of(client, tenant, made["id"]))[0]
    assert attempt["status"] == "needs_review"
    assert attempt["flags"]["amount_mismatch"]["expected_amount"] == first["amount"]

    other = await order(client, tenant)
    one = (await checkout(client, tenant, other["id"])).json()["payment"]
    two = (await checkout(client, tenant, other["id"], provider="cash")).json()["payment"]
    assert await succeed(tenant.slug, two, fee_amount=0) is True
    assert await succeed(tenant.slug, one) is True  # a second charge: kept for review
    assert await succeed(tenant.slug, one) is False
    reviewed = await get_order(client, tenant, other["id"])
    assert reviewed["flags"]["duplicate_payment"] == one["id"]
    statuses = {p["id"]: p["status"] for p in await payments_of(client, tenant, other["id"])}
    assert statuses == {one["id"]: "needs_review", two["id"]: "succeeded"}


async def test_bad_checkout_input(client, make_tenant):
    tenant = await make_tenant()
    made = await order(client, tenant)
    assert_error(await checkout(client, tenant, made["id"]), 422, "no_provider_available")
    await configure(client, tenant)
    assert_error(await checkout(client, tenant, made["id"], provider="stripe"), 422,
                 "provider_unavailable_for_currency")
    assert_error(await checkout(client, tenant, made["id"], surprise=1), 400)
    assert_error(await checkout(client, tenant, made["id"], return_url="ftp://x"), 400)
    assert_error(await checkout(client, tenant, str(uuid.uuid4())), 404)
    assert_error(await client.post("/v1/orders/not-a-uuid/checkout", json={},
                                   headers=tenant.headers), 404)
    assert await payments_of(client, tenant, made["id"]) == []
    await client.post(f"/v1/orders/{made['id']}/cancel", headers=tenant.headers)
    assert_error(await checkout(client, tenant, made["id"]), 409, "order_not_payable")
    yen = await order(client, tenant, currency="JPY",
                      items=[{"description": "Too small", "quantity": 1, "unit_amount": 10}])
    assert_error(await checkout(client, tenant, yen["id"]), 422, "no_provider_available")


async def test_cash_mark_paid(client, make_tenant):
    tenant = await make_tenant()
    made = await order(client, tenant)
    h = tenant.headers
    # without a cash configuration there is no desk to take the money
    assert_error(await client.post(f"/v1/orders/{made['id']}/mark-paid", headers=h), 422,
                 "provider_not_configured")
    assert (await get_order(client, tenant, made["id"]))["status"] == "pending_payment"
    await client.put("/v1/providers/cash", json={}, headers=tenant.headers)  # mark-paid needs it
    assert_error(await client.post(f"/v1/orders/{made['id']}/mark-paid", json={"amount": 1},
                                   headers=h), 422, "amount_mismatch")
    assert_error(await client.post(f"/v1/orders/{made['id']}/mark-paid", json={"cash": True},
                                   headers=h), 400)
    assert (await get_order(client, tenant, made["id"]))["status"] == "pending_payment"
    keyed = {**h, "Idempotency-Key": new_key()}
    body = {"amount": made["total"], "reference": "till 3", "note": "paid at the desk"}
    paid = await client.post(f"/v1/orders/{made['id']}/mark-paid", json=body, headers=keyed)
    assert paid.status_code == 200, paid.text
    again = await client.post(f"/v1/orders/{made['id']}/mark-paid", json=body, headers=keyed)
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == paid.json()
    payment = paid.json()
    assert payment["provider"] == "cash" and payment["status"] == "succeeded"
    assert payment["fee_amount"] == 0
    assert (await get_order(client, tenant, made["id"]))["status"] == "paid"
    trail = (await client.get(f"/v1/audit-log?entity_type=order&entity_id={made['id']}",
                              headers=h)).json()["data"]
    marked = next(e for e in trail if e["action"] == "order.marked_paid")
    assert marked["actor_key_id"] is not None and marked["data"]["reference"] == "till 3"
    ledger = (await client.get(f"/v1/ledger/transactions?order_id={made['id']}",
                               headers=h)).json()["data"]
    assert [t["kind"] for t in ledger] == ["payment.cash_received"]


async def test_payments_list_filters(client, make_tenant):
    tenant = await make_tenant()
    await configure(client, tenant)
    await configure(client, tenant, "cash", priority=500)
    a, b = await order(client, tenant), await order(client, tenant)
    await checkout(client, tenant, a["id"])
    await checkout(client, tenant, b["id"], provider="cash")
    h = tenant.headers
    everything = (await client.get("/v1/payments", headers=h)).json()
    assert len(everything["data"]) == 2 and everything["has_more"] is False
    cash = (await client.get("/v1/payments?provider=cash", headers=h)).json()["data"]
    assert [p["order_id"] for p in cash] == [b["id"]]
    pending = (await client.get("/v1/payments?status=pending&limit=1", headers=h)).json()
    assert len(pending["data"]) == 1 and pending["has_more"] is True
    one = pending["data"][0]
    read = await client.get(f"/v1/payments/{one['id']}", headers=h)
    assert read.status_code == 200 and read.json() == one
    for bad in ("status=nope", "limit=101", "order_id=nope", "page=0"):
        assert_error(await client.get(f"/v1/payments?{bad}", headers=h), 400)
    assert_error(await client.get(f"/v1/payments/{uuid.uuid4()}", headers=h), 404)


@pytest.fixture
async def paystack_down(client, owner_headers):  # type: ignore[no-untyped-def]
    """Point the catalog's Paystack at a closed loopback port; restore afterwards."""
    original = (await client.get("/v1/owner/providers/paystack", headers=owner_headers)).json()
    dead = f"http://127.0.0.1:{free_port()}"
    response = await client.patch("/v1/owner/providers/paystack", headers=owner_headers,
                                  json={"api_base_url": dead, "sandbox_api_base_url": dead})
    assert response.status_code == 200, response.text
    yield
    await client.patch("/v1/owner/providers/paystack", headers=owner_headers, json={
        "api_base_url": original["api_base_url"],
        "sandbox_api_base_url": original["sandbox_api_base_url"]})


@pytest.mark.usefixtures("paystack_down")
async def test_failover_and_circuit_breaker(client, make_tenant):
    tenant = await make_tenant()
    await configure(client, tenant, "paystack", priority=1, currencies=["USD"])
    await configure(client, tenant, "sandbox", priority=2)
    for n in range(circuit.THRESHOLD):
        made = await order(client, tenant)
        started = await checkout(client, tenant, made["id"])
        assert started.status_code == 201, started.text
        assert started.json()["failed_over"] == ["paystack"]
        attempts = await payments_of(client, tenant, made["id"])
        assert [(p["provider"], p["status"], p["failure_code"]) for p in attempts] == [
            ("paystack", "failed", "provider_unavailable"), ("sandbox", "pending", None)]
        assert [p["attempt_number"] for p in attempts] == [1, 2]
    # the breaker is open now: Paystack is not even tried
    assert await circuit.is_open(get_redis(), tenant.slug, "paystack")
    made = await order(client, tenant)
    started = await checkout(client, tenant, made["id"])
    assert started.json()["failed_over"] == []
    assert [p["provider"] for p in await payments_of(client, tenant, made["id"])] == ["sandbox"]
    trail = (await client.get("/v1/audit-log?entity_type=order&action="
                              "payment.provider_unavailable", headers=tenant.headers)).json()
    assert len(trail["data"]) == circuit.THRESHOLD
    await circuit.record_success(get_redis(), tenant.slug, "paystack")


@pytest.mark.usefixtures("paystack_down")
async def test_every_provider_down_is_503_and_recorded(client, make_tenant):
    tenant = await make_tenant()
    await configure(client, tenant, "paystack", currencies=["USD"])
    made = await order(client, tenant)
    error = assert_error(await checkout(client, tenant, made["id"]), 503, "provider_unavailable")
    assert "paystack" in error["message"]
    attempts = await payments_of(client, tenant, made["id"])
    assert [(p["provider"], p["status"]) for p in attempts] == [("paystack", "failed")]
    assert (await get_order(client, tenant, made["id"]))["status"] == "pending_payment"
    await circuit.record_success(get_redis(), tenant.slug, "paystack")


async def test_concurrent_checkouts_of_one_order_make_one_attempt(client, make_tenant):
    import asyncio

    tenant = await make_tenant()
    await configure(client, tenant)
    made = await order(client, tenant)
    responses = await asyncio.gather(*[checkout(client, tenant, made["id"]) for _ in range(8)])
    assert sorted(r.status_code for r in responses) == [200] * 7 + [201]
    assert len({r.json()["payment"]["id"] for r in responses}) == 1
    assert len(await payments_of(client, tenant, made["id"])) == 1


async def test_payment_after_cancel_is_recorded_and_flagged(client, make_tenant):
    tenant = await make_tenant()
    await configure(client, tenant)
    made = await order(client, tenant)
    payment = (await checkout(client, tenant, made["id"])).json()["payment"]
    await client.post(f"/v1/orders/{made['id']}/cancel", headers=tenant.headers)
    assert (await payments_of(client, tenant, made["id"]))[0]["status"] == "cancelled"
    assert await succeed(tenant.slug, payment) is True  # the customer paid anyway
    late = await get_order(client, tenant, made["id"])
    assert late["status"] == "cancelled" and late["payment_status"] == "paid"
    assert late["flags"]["paid_while"]["status"] == "cancelled"
    journal = (await client.get(f"/v1/ledger/transactions?order_id={made['id']}",
                                headers=tenant.headers)).json()["data"]
    assert [t["kind"] for t in journal] == ["payment.captured"]  # money in, owed back
