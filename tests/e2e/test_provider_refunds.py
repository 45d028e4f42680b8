"""Refunds and disputes through HTTP for each external provider (issue 12: T11, T12).

Each test pays an order the way ``tests/e2e/test_providers_e2e.py`` does, then refunds it
with ``POST /v1/orders/{id}/refunds`` and follows the provider's answer and webhooks:

* ``stripe`` against a real localstripe: the Refunds API answers ``succeeded`` at once;
  the request carries our idempotency key to Stripe; a retry with the same Paymesh
  ``Idempotency-Key`` makes no second Stripe refund; Stripe's ``charge.refunded`` and
  ``refund.updated`` webhooks for that refund find the same row (no second row, no second
  posting). A dispute opened and closed by ``charge.dispute.*`` webhooks.
* ``paystack`` and ``flutterwave`` through their documented-payload doubles: a refund is
  ``pending`` until the provider's refund webhook says ``processed``/``completed`` (ledger,
  order partially refunded / refunded) or ``failed`` (the amount is refundable again).
  Paystack disputes: ``charge.dispute.create|remind|resolve``.
* ``bank_transfer``: the refund is ``manual_required`` until staff mark it refunded.

Webhooks are POSTed signed to ``/webhooks/{tenant}/{provider}`` and the stored event is
applied with the worker's own function (:func:`process_in_process`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import stripe

from tests.e2e.provider_fakes import (
    catalog_pointed_at,
    configure,
    create_order,
    fake_base_url,
    get_order,
    inbox,
    ledger_for,
    process_in_process,
    routed_http,
    start_checkout,
)
from tests.e2e.test_providers_e2e import BANK, FEED_HEADERS, FEED_KEY, feed, paystack_signed
from tests.providers.conftest import localstripe_url  # noqa: F401  (session fixture)
from tests.providers.fake_paystack import SECRET as PAYSTACK_SECRET
from tests.providers.fake_paystack import FakePaystack
from tests.providers.payloads import stripe_charge, stripe_dispute, stripe_event
from tests.providers.test_flutterwave import HASH as FLUTTERWAVE_HASH
from tests.providers.test_flutterwave import SECRET as FLUTTERWAVE_SECRET
from tests.providers.test_flutterwave import FakeFlutterwave
from tests.providers.test_flutterwave import _dump as flutterwave_json

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning"),
]


# ----------------------------------------------------------------------------- helpers


async def refund(client: httpx.AsyncClient, tenant: Any, order_id: str, key: str | None = None,
                 **body: Any) -> httpx.Response:
    return await client.post(f"/v1/orders/{order_id}/refunds", json=body,
                             headers={**tenant.headers,
                                      "Idempotency-Key": key or uuid.uuid4().hex})


async def refunds_of(client: httpx.AsyncClient, tenant: Any,
                     order_id: str) -> list[dict[str, Any]]:
    response = await client.get("/v1/refunds", headers=tenant.headers,
                                params={"order_id": order_id, "limit": 100})
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def disputes_of(client: httpx.AsyncClient, tenant: Any,
                      order_id: str) -> list[dict[str, Any]]:
    response = await client.get("/v1/disputes", headers=tenant.headers,
                                params={"order_id": order_id})
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def deliver(client: httpx.AsyncClient, tenant: Any, provider: str, body: bytes,
                  headers: dict[str, str]) -> tuple[dict[str, Any], str]:
    """POST one signed webhook, then apply the stored event as the worker would:
    ``(stored event, outcome)``."""
    before = {e["id"] for e in await inbox(client, tenant)}
    response = await client.post(f"/webhooks/{tenant.slug}/{provider}", content=body,
                                 headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["duplicate"] is False, response.text
    [event] = [e for e in await inbox(client, tenant) if e["id"] not in before]
    return event, await process_in_process(tenant, event["id"])


def kinds(journal: list[dict[str, Any]]) -> list[str]:
    return sorted(t["kind"] for t in journal)


async def balanced(client: httpx.AsyncClient, tenant: Any, currency: str) -> None:
    response = await client.get(f"/v1/ledger/balances?currency={currency}",
                                headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert all(t["balanced"] for t in response.json()["trial_balance"])


# ----------------------------------------------------------------------------- stripe

STRIPE_SECRET = "sk_test_paymesh_refunds"


def stripe_signed(body: bytes, secret: str) -> dict[str, str]:
    stamp = int(time.time())
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={stamp},v1={mac}", "content-type": "application/json"}


def stripe_body(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps(stripe_event(kind, obj, id=f"evt_{uuid.uuid4().hex[:24]}")).encode()


async def stripe_paid_order(client: httpx.AsyncClient, tenant: Any, browser: Any,
                            webhook_secret: str, amount: int) -> tuple[dict[str, Any], str]:
    """An order paid through a PaymentIntent confirmed on localstripe; Stripe's
    ``payment_intent.succeeded`` (the PaymentIntent as localstripe returns it) settles it."""
    order = await create_order(client, tenant, amount, "USD", "Annual check-up")
    checkout = await start_checkout(client, tenant, order["id"], "stripe")
    intent_id = checkout["payment"]["provider_payment_id"]
    await browser.v1.payment_intents.update_async(intent_id, {"payment_method": "pm_card_visa"})
    intent = await browser.v1.payment_intents.confirm_async(intent_id)
    assert intent.status == "succeeded"
    body = stripe_body("payment_intent.succeeded", intent.to_dict())
    _, outcome = await deliver(client, tenant, "stripe", body, stripe_signed(body, webhook_secret))
    assert outcome == "processed"
    assert (await get_order(client, tenant, order["id"]))["status"] == "paid"
    return order, intent_id


async def test_stripe_refund_through_localstripe_and_its_webhooks_match_the_row(
        client, make_tenant, owner_headers, localstripe_url, monkeypatch):  # noqa: F811
    tenant = await make_tenant("stripe-refund", currency="USD")
    webhook_secret = f"whsec_{uuid.uuid4().hex}"
    sent: list[tuple[str, str, dict[str, str]]] = []
    original = stripe.HTTPXClient.request_async

    #: while set, Stripe's answers to refund creates are lost on the way back (the first
    #: try reaches localstripe, the SDK's retries find the network down)
    lose_answers = {"on": False, "delivered": 0}

    async def spying(self: Any, method: str, url: str, headers: Any,
                     post_data: Any = None) -> Any:
        if "/v1/refunds" in url:
            sent.append((method.upper(), url, dict(headers)))
            if method.upper() == "POST" and lose_answers["on"]:
                if not lose_answers["delivered"]:
                    lose_answers["delivered"] += 1
                    await original(self, method, url, headers, post_data)
                self._handle_request_error(httpx.ConnectError("answer lost"))  # as the SDK
        return await original(self, method, url, headers, post_data)

    monkeypatch.setattr(stripe.HTTPXClient, "request_async", spying)
    browser_http = stripe.HTTPXClient()
    try:
        async with catalog_pointed_at(client, owner_headers, "stripe", localstripe_url):
            await configure(client, tenant, "stripe", {
                "public_key": "pk_test_paymesh_refunds", "secret_key": STRIPE_SECRET,
                "webhook_secret": webhook_secret})
            browser = stripe.StripeClient(STRIPE_SECRET, base_addresses={"api": localstripe_url},
                                          http_client=browser_http)
            order, intent_id = await stripe_paid_order(client, tenant, browser, webhook_secret,
                                                       4_250)

            key = uuid.uuid4().hex
            # Stripe refunds, but its answer never comes back: 503, the refund stays
            # pending and holds its amount
            lose_answers["on"] = True
            # (a free-text reason travels in metadata: localstripe refuses Stripe's
            # ``reason`` parameter, which real Stripe takes for its three enum values)
            lost = await refund(client, tenant, order["id"], key, amount=1_000,
                                reason="changed their mind")
            assert lost.status_code == 503, lost.text
            assert lost.json()["error"]["code"] == "provider_unavailable"
            lose_answers["on"] = False
            [pending] = await refunds_of(client, tenant, order["id"])
            assert (pending["status"], pending["provider_refund_id"]) == ("pending", None)
            # every try carried our deterministic idempotency key to Stripe
            creates = [h for m, _, h in sent if m == "POST"]
            assert creates and {{k.lower(): v for k, v in h.items()}["idempotency-key"]
                                for h in creates} == {f"{tenant.slug}:refund:{pending['id']}"}

            # the same request again (same Idempotency-Key) finishes that refund: it is
            # found at Stripe by our key (localstripe ignores Idempotency-Key, so this
            # also shows Paymesh itself never creates a second one)
            first = await refund(client, tenant, order["id"], key, amount=1_000,
                                 reason="changed their mind")
            assert first.status_code == 201, first.text
            one = first.json()
            assert one["id"] == pending["id"]
            assert (one["status"], one["amount"], one["currency"], one["provider"]) == (
                "succeeded", 1_000, "USD", "stripe"), one["failure_reason"]
            assert one["provider_refund_id"].startswith("re_")
            assert len([m for m, _, _ in sent if m == "POST"]) == len(creates)

            # the same request again: the same refund, no second call to create one
            again = await refund(client, tenant, order["id"], key, amount=1_000,
                                 reason="changed their mind")
            assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
            assert again.json() == one
            assert len([m for m, _, _ in sent if m == "POST"]) == len(creates)
            at_stripe = await browser.v1.refunds.list_async({"payment_intent": intent_id})
            assert [r.id for r in at_stripe.data] == [one["provider_refund_id"]]
            stripe_refund = at_stripe.data[0].to_dict()
    finally:
        await browser_http.close_async()

    state = await get_order(client, tenant, order["id"])
    assert (state["status"], state["payment_status"], state["amount_refunded"]) == (
        "partially_refunded", "partially_refunded", 1_000)

    # Stripe's webhooks for that refund (documented shapes): the same row, nothing new
    charge = {**stripe_charge(), "id": f"ch_{uuid.uuid4().hex[:14]}", "amount": 4_250,
              "amount_refunded": 1_000, "currency": "usd", "payment_intent": intent_id,
              "refunds": {"object": "list", "data": [stripe_refund], "has_more": False,
                          "url": "/v1/charges/ch/refunds"}}
    for kind, obj in (("charge.refunded", charge), ("refund.updated", stripe_refund)):
        body = stripe_body(kind, obj)
        event, outcome = await deliver(client, tenant, "stripe", body,
                                       stripe_signed(body, webhook_secret))
        assert outcome == "processed", event
        assert event["normalized"]["provider_refund_id"] == one["provider_refund_id"]
    [row] = await refunds_of(client, tenant, order["id"])
    assert row == one
    assert kinds(await ledger_for(client, tenant, order["id"])) == [
        "payment.captured", "refund.succeeded"]
    assert (await get_order(client, tenant, order["id"]))["amount_refunded"] == 1_000
    await balanced(client, tenant, "USD")

    # a dispute on the rest: opened with Stripe's evidence deadline, then lost
    due = int(time.time()) + 7 * 86_400
    dispute = {**stripe_dispute(), "id": f"dp_{uuid.uuid4().hex[:14]}", "amount": 3_250,
               "currency": "usd", "payment_intent": intent_id, "charge": charge["id"],
               "evidence_details": {"due_by": due, "has_evidence": False,
                                    "past_due": False, "submission_count": 0}}
    body = stripe_body("charge.dispute.created", dispute)
    _, outcome = await deliver(client, tenant, "stripe", body, stripe_signed(body, webhook_secret))
    assert outcome == "processed"
    [opened] = await disputes_of(client, tenant, order["id"])
    assert (opened["status"], opened["amount"], opened["provider_dispute_id"]) == (
        "open", 3_250, dispute["id"])
    assert opened["evidence_due_by"] is not None
    assert int(_epoch(opened["evidence_due_by"])) == due
    assert (await get_order(client, tenant, order["id"]))["status"] == "disputed"
    body = stripe_body("charge.dispute.closed", {**dispute, "status": "lost"})
    _, outcome = await deliver(client, tenant, "stripe", body, stripe_signed(body, webhook_secret))
    assert outcome == "processed"
    [closed] = await disputes_of(client, tenant, order["id"])
    assert closed["status"] == "lost" and closed["closed_at"] is not None
    await balanced(client, tenant, "USD")


def _epoch(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value).timestamp()


# ----------------------------------------------------------------------------- paystack


@asynccontextmanager
async def paystack_shop(app: Any, client: httpx.AsyncClient, owner_headers: Any, tenant: Any,
                        fake: FakePaystack) -> AsyncIterator[Any]:
    """Inside the block the app reaches ``fake`` as Paystack, the tenant configured (its
    provider is built once, with the routed HTTP client: one block per test)."""
    base = fake_base_url()
    async with routed_http(app) as routes, \
            catalog_pointed_at(client, owner_headers, "paystack", base):
        routes.add(base, fake)
        await configure(client, tenant, "paystack",
                        {"public_key": "pk_test_paymesh_e2e", "secret_key": PAYSTACK_SECRET})
        yield routes
        assert routes.refused == []


async def paystack_paid_order(client: httpx.AsyncClient, tenant: Any, fake: FakePaystack,
                              amount: int) -> tuple[dict[str, Any], dict[str, Any]]:
    order = await create_order(client, tenant, amount, "NGN", "Lens kit")
    checkout = await start_checkout(client, tenant, order["id"], "paystack")
    transaction = fake.pay(checkout["payment"]["provider_payment_id"])
    body = json.dumps({"event": "charge.success", "data": transaction}).encode()
    _, outcome = await deliver(client, tenant, "paystack", body, paystack_signed(body))
    assert outcome == "processed"
    assert (await get_order(client, tenant, order["id"]))["status"] == "paid"
    return order, transaction


def paystack_refund_event(name: str, transaction: dict[str, Any], amount: int,
                          refund_reference: str) -> bytes:
    """Paystack's documented ``refund.*`` webhook: it names the transaction and the
    processor's ``refund_reference``, not the refund ``id`` ``POST /refund`` answered."""
    return json.dumps({"event": name, "data": {
        "status": name.removeprefix("refund."),
        "transaction_reference": transaction["reference"],
        "refund_reference": refund_reference,
        "amount": amount,
        "currency": "NGN",
        "processor": "mastercard",
        "customer": {"first_name": None, "last_name": None, "email": "patient@example.com"},
        "integration": 463433,
        "domain": "test",
    }}).encode()


async def test_paystack_refund_pending_until_its_webhook(app, client, make_tenant,
                                                         owner_headers):
    fake = FakePaystack()
    tenant = await make_tenant("paystack-refund", currency="NGN")
    async with paystack_shop(app, client, owner_headers, tenant, fake):
        await paystack_refunds(client, tenant, fake)


async def paystack_refunds(client: httpx.AsyncClient, tenant: Any, fake: FakePaystack) -> None:
    order, transaction = await paystack_paid_order(client, tenant, fake, 250_000)
    first = await refund(client, tenant, order["id"], amount=100_000,
                         reason="requested_by_customer")
    assert first.status_code == 201, first.text
    second = await refund(client, tenant, order["id"], amount=150_000)
    assert second.status_code == 201, second.text
    one, two = first.json(), second.json()
    # Paystack queues refunds: pending, holding their amounts, under the id it answered
    assert (one["status"], one["provider_refund_id"]) == ("pending", "1234567")
    assert (two["status"], two["provider_refund_id"]) == ("pending", "1234568")
    [(_, _, sent)] = [s for s in fake.sent if s[1] == "/refund"][:1]
    assert (sent["transaction"], sent["amount"]) == (transaction["reference"], 100_000)
    assert f"{tenant.slug}:refund:{one['id']}" in sent["merchant_note"]
    state = await get_order(client, tenant, order["id"])
    assert (state["status"], state["amount_refunded"]) == ("paid", 0)
    assert kinds(await ledger_for(client, tenant, order["id"])) == ["payment.captured"]
    held = await refund(client, tenant, order["id"], amount=1)
    assert held.status_code == 422 and held.json()["error"]["code"] == (
        "amount_exceeds_refundable")

    # refund.processed for the first → succeeded, the same row
    body = paystack_refund_event("refund.processed", transaction, 100_000, "132013318360")
    event, outcome = await deliver(client, tenant, "paystack", body, paystack_signed(body))
    assert (event["type"], outcome) == ("refund.succeeded", "processed")
    rows = {r["id"]: r for r in await refunds_of(client, tenant, order["id"])}
    assert len(rows) == 2
    assert rows[one["id"]]["status"] == "succeeded"
    assert rows[one["id"]]["provider_refund_id"] == "1234567"
    assert rows[two["id"]]["status"] == "pending"
    state = await get_order(client, tenant, order["id"])
    assert (state["status"], state["payment_status"], state["amount_refunded"]) == (
        "partially_refunded", "partially_refunded", 100_000)
    assert kinds(await ledger_for(client, tenant, order["id"])) == [
        "payment.captured", "refund.succeeded"]
    # at-least-once: the same delivery again is a duplicate and changes nothing
    again = await client.post(f"/webhooks/{tenant.slug}/paystack", content=body,
                              headers=paystack_signed(body))
    assert again.status_code == 200 and again.json()["duplicate"] is True
    # a forged one is refused
    forged = await client.post(f"/webhooks/{tenant.slug}/paystack", content=body,
                               headers=paystack_signed(body, "sk_test_someone_else"))
    assert forged.status_code == 400

    # refund.failed for the second → failed; its amount is refundable again
    body = paystack_refund_event("refund.failed", transaction, 150_000, "132013318361")
    event, outcome = await deliver(client, tenant, "paystack", body, paystack_signed(body))
    assert (event["type"], outcome) == ("refund.failed", "processed")
    rows = {r["id"]: r for r in await refunds_of(client, tenant, order["id"])}
    assert rows[two["id"]]["status"] == "failed"
    assert rows[one["id"]]["status"] == "succeeded"
    state = await get_order(client, tenant, order["id"])
    assert (state["status"], state["amount_refunded"]) == ("partially_refunded", 100_000)
    retry = await refund(client, tenant, order["id"], amount=150_000)
    assert retry.status_code == 201, retry.text
    assert (retry.json()["status"], retry.json()["provider_refund_id"]) == ("pending", "1234569")
    body = paystack_refund_event("refund.processed", transaction, 150_000, "132013318362")
    _, outcome = await deliver(client, tenant, "paystack", body, paystack_signed(body))
    assert outcome == "processed"
    state = await get_order(client, tenant, order["id"])
    assert (state["status"], state["payment_status"], state["amount_refunded"]) == (
        "refunded", "refunded", 250_000)
    assert kinds(await ledger_for(client, tenant, order["id"])) == [
        "payment.captured", "refund.succeeded", "refund.succeeded"]
    assert len(await refunds_of(client, tenant, order["id"])) == 3
    await balanced(client, tenant, "NGN")


def paystack_dispute_event(name: str, ident: int, transaction: dict[str, Any], *,
                           status: str, resolution: str | None = None,
                           due_at: str = "2026-12-24T18:00:00.000Z") -> bytes:
    """Paystack's documented ``charge.dispute.*`` webhook (``dueAt``: the deadline)."""
    return json.dumps({"event": name, "data": {
        "id": ident, "refund_amount": transaction["amount"], "currency": "NGN",
        "status": status, "resolution": resolution, "domain": "test",
        "transaction": transaction, "transaction_reference": None, "category": "chargeback",
        "customer": {"id": 181873746, "email": "patient@example.com"},
        "bin": "408408", "last4": "4081", "dueAt": due_at,
        "resolvedAt": "2026-12-20T10:00:00.000Z" if resolution else None,
        "evidence": None, "attachments": None, "note": None, "history": [], "messages": [],
        "created_at": "2026-12-02T08:51:52.000Z", "updated_at": "2026-12-02T08:51:52.000Z",
    }}).encode()


async def test_paystack_disputes_open_remind_and_resolve(app, client, make_tenant,
                                                         owner_headers):
    fake = FakePaystack()
    tenant = await make_tenant("paystack-dispute", currency="NGN")
    async with paystack_shop(app, client, owner_headers, tenant, fake):
        outcomes = await paystack_disputes(client, tenant, fake)
    # declined: the merchant's evidence stood → won, paid again;
    # merchant-accepted: the customer was refunded → lost
    assert outcomes == {"declined": ("won", "paid"), "merchant-accepted": ("lost", "refunded")}
    await balanced(client, tenant, "NGN")


async def paystack_disputes(client: httpx.AsyncClient, tenant: Any,
                            fake: FakePaystack) -> dict[str, tuple[str, str]]:
    outcomes = {}
    for resolution, ident in (("declined", 358950), ("merchant-accepted", 358951)):
        order, transaction = await paystack_paid_order(client, tenant, fake, 250_000)
        body = paystack_dispute_event("charge.dispute.create", ident, transaction,
                                      status="awaiting-merchant-feedback")
        event, outcome = await deliver(client, tenant, "paystack", body, paystack_signed(body))
        assert (event["type"], outcome) == ("dispute.opened", "processed")
        [opened] = await disputes_of(client, tenant, order["id"])
        assert (opened["status"], opened["provider_dispute_id"], opened["amount"],
                opened["reason"]) == ("open", str(ident), 250_000, "chargeback")
        assert _epoch(opened["evidence_due_by"]) == _epoch("2026-12-24T18:00:00+00:00")
        state = await get_order(client, tenant, order["id"])
        assert (state["status"], state["payment_status"]) == ("disputed", "disputed")
        refused = await refund(client, tenant, order["id"])
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "dispute_open"

        # a reminder is accepted, processed, and changes nothing
        body = paystack_dispute_event("charge.dispute.remind", ident, transaction,
                                      status="awaiting-merchant-feedback")
        event, outcome = await deliver(client, tenant, "paystack", body, paystack_signed(body))
        assert outcome == "processed"
        assert await disputes_of(client, tenant, order["id"]) == [opened]
        assert (await get_order(client, tenant, order["id"]))["status"] == "disputed"

        body = paystack_dispute_event("charge.dispute.resolve", ident, transaction,
                                      status="resolved", resolution=resolution)
        event, outcome = await deliver(client, tenant, "paystack", body, paystack_signed(body))
        assert (event["type"], outcome) == ("dispute.closed", "processed")
        [closed] = await disputes_of(client, tenant, order["id"])
        outcomes[resolution] = (closed["status"],
                                (await get_order(client, tenant, order["id"]))["status"])
        assert closed["closed_at"] is not None
    return outcomes


# ----------------------------------------------------------------------------- flutterwave


def flutterwave_refund_event(refund_id: str, amount: str, transaction_id: int,
                             status: str) -> bytes:
    """Flutterwave v3's refund webhook: the refund's id, ``AmountRefunded`` in major units
    and the numeric ``TransactionId`` (no ``tx_ref``, no currency)."""
    return flutterwave_json({"event": "refund.completed", "data": {
        "id": int(refund_id), "AmountRefunded": amount, "status": status,
        "FlwRef": f"URF_1577867664541_{refund_id}", "destination": "payment_source",
        "comments": "Refund declined by issuer" if status == "failed" else "Refund",
        "settlement_id": "NEW", "meta": None,
        "createdAt": "2026-12-02T09:18:37.000Z", "updatedAt": "2026-12-02T09:20:37.000Z",
        "walletId": 74639, "AccountId": 73362, "TransactionId": transaction_id,
    }, "event.type": "Refund"})


async def test_flutterwave_refund_pending_until_its_webhook(app, client, make_tenant,
                                                            owner_headers):
    fake = FakeFlutterwave()
    fake.refund_status = "pending"
    base = fake_base_url("/v3")
    tenant = await make_tenant("flutterwave-refund", currency="NGN")
    hashed = {"verif-hash": FLUTTERWAVE_HASH, "content-type": "application/json"}
    async with routed_http(app) as routes, \
            catalog_pointed_at(client, owner_headers, "flutterwave", base):
        routes.add(base, fake)
        await configure(client, tenant, "flutterwave", {
            "public_key": "FLWPUBK_TEST-paymesh-X", "secret_key": FLUTTERWAVE_SECRET,
            "webhook_secret": FLUTTERWAVE_HASH})
        order = await create_order(client, tenant, 123_456, "NGN", "Lens kit")
        checkout = await start_checkout(client, tenant, order["id"], "flutterwave")
        tx_ref = checkout["payment"]["provider_payment_id"]
        transaction = fake.complete(tx_ref, amount="1234.56")
        body = flutterwave_json({"event": "charge.completed", "data": transaction})
        _, outcome = await deliver(client, tenant, "flutterwave", body, hashed)
        assert outcome == "processed"

        first = await refund(client, tenant, order["id"], amount=23_456)
        assert first.status_code == 201, first.text
        second = await refund(client, tenant, order["id"], amount=100_000)
        assert second.status_code == 201, second.text
        one, two = first.json(), second.json()
        assert (one["status"], one["provider_refund_id"]) == ("pending", "75923")
        assert (two["status"], two["provider_refund_id"]) == ("pending", "75924")
        refund_calls = [s for s in fake.sent if s[1].endswith("/refund")]
        assert [(p, str(b["amount"])) for _, p, b in refund_calls] == [
            ("/v3/transactions/288200108/refund", "234.56"),
            ("/v3/transactions/288200108/refund", "1000.00")]
        assert (await get_order(client, tenant, order["id"]))["amount_refunded"] == 0

        # the first completes, the second fails
        body = flutterwave_refund_event("75923", "234.56", 288200108, "completed")
        event, outcome = await deliver(client, tenant, "flutterwave", body, hashed)
        assert (event["type"], outcome) == ("refund.succeeded", "processed")
        refused = await client.post(f"/webhooks/{tenant.slug}/flutterwave", content=body,
                                    headers={"verif-hash": "not-the-hash"})
        assert refused.status_code == 400
        body = flutterwave_refund_event("75924", "1000.00", 288200108, "failed")
        event, outcome = await deliver(client, tenant, "flutterwave", body, hashed)
        assert (event["type"], outcome) == ("refund.failed", "processed")

        rows = {r["id"]: r for r in await refunds_of(client, tenant, order["id"])}
        assert len(rows) == 2
        assert (rows[one["id"]]["status"], rows[two["id"]]["status"]) == ("succeeded", "failed")
        state = await get_order(client, tenant, order["id"])
        assert (state["status"], state["payment_status"], state["amount_refunded"]) == (
            "partially_refunded", "partially_refunded", 23_456)
        assert kinds(await ledger_for(client, tenant, order["id"])) == [
            "payment.captured", "refund.succeeded"]

        # what failed is refundable again; this time Flutterwave completes it at once
        fake.refund_status = "completed"
        rest = await refund(client, tenant, order["id"])
        assert routes.refused == []
    assert rest.status_code == 201, rest.text
    assert (rest.json()["status"], rest.json()["amount"]) == ("succeeded", 100_000)
    state = await get_order(client, tenant, order["id"])
    assert (state["status"], state["payment_status"], state["amount_refunded"]) == (
        "refunded", "refunded", 123_456)
    await balanced(client, tenant, "NGN")


# ----------------------------------------------------------------------------- bank transfer


async def test_bank_transfer_refund_is_manual_until_marked_refunded(client, make_tenant):
    tenant = await make_tenant("bank-refund", currency="VND")
    await configure(client, tenant, "bank_transfer",
                    {"webhook_secret": FEED_KEY, "config": BANK})
    order = await create_order(client, tenant, 2_277_000, "VND", "Visit")
    checkout = await start_checkout(client, tenant, order["id"], "bank_transfer")
    reference = checkout["instructions"]["reference"]
    _, outcome = await deliver(client, tenant, "bank_transfer",
                               feed(f"{reference} thanh toan", 2_277_000), FEED_HEADERS)
    assert outcome == "processed"
    assert (await get_order(client, tenant, order["id"]))["status"] == "paid"

    made = await refund(client, tenant, order["id"], reason="requested_by_customer")
    assert made.status_code == 201, made.text
    row = made.json()
    assert (row["status"], row["amount"], row["provider"], row["provider_refund_id"]) == (
        "manual_required", 2_277_000, "bank_transfer", None)
    state = await get_order(client, tenant, order["id"])
    assert (state["status"], state["amount_refunded"]) == ("paid", 0)
    held = await refund(client, tenant, order["id"], amount=1)
    assert held.status_code == 422 and held.json()["error"]["code"] == (
        "amount_exceeds_refundable")

    marked = await client.post(f"/v1/refunds/{row['id']}/mark-refunded",
                               headers={**tenant.headers, "Idempotency-Key": uuid.uuid4().hex})
    assert marked.status_code == 200, marked.text
    assert marked.json()["status"] == "succeeded" and marked.json()["completed_at"]
    twice = await client.post(f"/v1/refunds/{row['id']}/mark-refunded",
                              headers={**tenant.headers, "Idempotency-Key": uuid.uuid4().hex})
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "refund_not_manual"
    state = await get_order(client, tenant, order["id"])
    assert (state["status"], state["payment_status"], state["amount_refunded"]) == (
        "refunded", "refunded", 2_277_000)
    assert kinds(await ledger_for(client, tenant, order["id"])) == [
        "payment.captured", "refund.succeeded"]
    await balanced(client, tenant, "VND")
