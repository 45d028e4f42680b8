"""PaystackProvider against a fake answering in Paystack's documented shapes.

``test_published_contracts.py`` validates the fake's requests and answers against
Paystack's published OpenAPI description when that file is available.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

import httpx
import pytest

from providers.base import (
    BadCredentials,
    CreatePayment,
    EventType,
    InvalidProviderRequest,
    MalformedWebhook,
    PaymentState,
    ProviderConfig,
    ProviderUnavailable,
    RefundRequest,
    RefundState,
    WebhookRequest,
    WebhookVerificationError,
)
from providers.paystack import PaystackProvider
from tests.providers.fake_paystack import SECRET, FakePaystack


@pytest.fixture
def fake() -> FakePaystack:
    return FakePaystack()


def make(fake: Any, **config: Any) -> PaystackProvider:
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    settings = {"tenant": "clinic", "code": "paystack", "secret_key": SECRET, **config}
    return PaystackProvider(ProviderConfig(**settings), http)


def checkout(key: str = "checkout:order-1", **extra: Any) -> CreatePayment:
    fields = {
        "order_id": "order-1",
        "order_number": "INV-0001",
        "amount": 250000,
        "currency": "NGN",
        "idempotency_key": key,
        "customer_email": "ada@example.com",
        "return_url": "https://clinic.example/paid",
        **extra,
    }
    return CreatePayment(**fields)


async def test_initialize_verify_and_refund(fake: FakePaystack) -> None:
    provider = make(fake)
    created = await provider.create_payment(checkout())
    reference = created.provider_payment_id
    assert re.fullmatch(r"[A-Za-z0-9.=-]+", reference) and reference.startswith("checkout-order-1-")
    assert created.redirect_url == f"https://checkout.paystack.com/{reference[:6]}access"
    assert created.client_secret == f"{reference[:6]}access"
    _, _, sent = fake.sent[0]
    assert sent["amount"] == 250000 and sent["callback_url"] == "https://clinic.example/paid"
    assert sent["metadata"]["order_id"] == "order-1"

    assert (await provider.fetch_payment(reference)).state is PaymentState.PENDING
    fake.pay(reference)
    paid = await provider.fetch_payment(reference)
    assert paid.state is PaymentState.SUCCEEDED
    assert (paid.amount, paid.currency, paid.fee_amount) == (250000, "NGN", 1500)

    refund = await provider.refund(
        RefundRequest(
            provider_payment_id=reference, amount=50000, currency="NGN", idempotency_key="rf-1"
        )
    )
    assert refund.state is RefundState.PENDING
    assert (refund.provider_refund_id, refund.amount, refund.currency) == ("1234567", 50000, "NGN")
    assert fake.sent[-1][2]["transaction"] == reference


async def test_retried_create_never_makes_a_second_transaction(fake: FakePaystack) -> None:
    provider = make(fake)
    first = await provider.create_payment(checkout("order-2-attempt-1"))
    assert first.provider_payment_id == "order-2-attempt-1"  # already safe: used verbatim
    with pytest.raises(InvalidProviderRequest) as pending:
        await provider.create_payment(checkout("order-2-attempt-1"))
    assert pending.value.code == "duplicate_reference"
    fake.pay("order-2-attempt-1")
    replay = await provider.create_payment(checkout("order-2-attempt-1"))
    assert replay.state is PaymentState.SUCCEEDED
    assert len(fake.transactions) == 1


def sign(payload: dict[str, Any], secret: str = SECRET) -> WebhookRequest:
    body = json.dumps(payload).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha512).hexdigest()
    return WebhookRequest(headers={"x-paystack-signature": signature}, body=body)


async def test_webhooks(fake: FakePaystack) -> None:
    provider = make(fake)
    created = await provider.create_payment(checkout())
    tx = fake.pay(created.provider_payment_id)

    success = sign({"event": "charge.success", "data": tx})
    provider.verify_webhook(success)
    event = provider.parse_webhook(success)
    assert event.type is EventType.PAYMENT_SUCCEEDED
    assert event.provider_payment_id == created.provider_payment_id
    assert (event.amount, event.currency, event.fee_amount) == (250000, "NGN", 1500)
    assert event.data["order_id"] == "order-1"
    assert event.provider_event_id == f"charge.success:{tx['id']}"
    assert provider.parse_webhook(success).provider_event_id == event.provider_event_id

    refund_data = {
        "status": "processed",
        "transaction_reference": tx["reference"],
        "refund_reference": "RFD_1",
        "amount": 50000,
        "currency": "NGN",
        "processor": "mpgs_zen",
        "integration": 463433,
        "domain": "test",
        "id": "1234567",
    }
    refunded = provider.parse_webhook(sign({"event": "refund.processed", "data": refund_data}))
    assert refunded.type is EventType.REFUND_SUCCEEDED
    assert (refunded.provider_refund_id, refunded.provider_payment_id, refunded.amount) == (
        "1234567",
        tx["reference"],
        50000,
    )
    # Paystack's documented refund webhook has no refund ``id``: none is made up (the
    # processor's ``refund_reference`` is not the id ``POST /refund`` answered)
    documented = {k: v for k, v in refund_data.items() if k != "id"}
    anonymous = provider.parse_webhook(sign({"event": "refund.processed", "data": documented}))
    assert anonymous.provider_refund_id is None
    assert (anonymous.provider_payment_id, anonymous.amount) == (tx["reference"], 50000)
    assert anonymous.data["refund_reference"] == "RFD_1"
    failed = provider.parse_webhook(
        sign({"event": "refund.failed", "data": {**refund_data, "status": "failed"}})
    )
    assert failed.type is EventType.REFUND_FAILED
    assert (
        provider.parse_webhook(sign({"event": "refund.pending", "data": refund_data})).type
        is EventType.IGNORED
    )

    dispute = {
        "id": 358950,
        "refund_amount": 0,
        "currency": "NGN",
        "status": "awaiting-merchant-feedback",
        "resolution": None,
        "domain": "test",
        "category": "chargeback",
        "transaction": tx,
    }
    opened = provider.parse_webhook(sign({"event": "charge.dispute.create", "data": dispute}))
    assert opened.type is EventType.DISPUTE_OPENED
    assert (opened.provider_dispute_id, opened.provider_payment_id, opened.amount) == (
        "358950",
        tx["reference"],
        250000,
    )
    for resolution, outcome in (("declined", "won"), ("merchant-accepted", "lost")):
        resolved = {**dispute, "status": "resolved", "resolution": resolution}
        closed = provider.parse_webhook(sign({"event": "charge.dispute.resolve", "data": resolved}))
        assert closed.type is EventType.DISPUTE_CLOSED and closed.data["outcome"] == outcome
    transfer = provider.parse_webhook(sign({"event": "transfer.success", "data": {"id": 9}}))
    assert transfer.type is EventType.IGNORED


def test_webhook_rejections() -> None:
    provider = make(FakePaystack())
    good = sign({"event": "charge.success", "data": {"id": 1}})
    with pytest.raises(WebhookVerificationError):
        provider.verify_webhook(
            sign({"event": "charge.success", "data": {"id": 1}}, secret="sk_test_other")
        )
    with pytest.raises(WebhookVerificationError):
        provider.verify_webhook(
            WebhookRequest(headers=good.headers, body=good.body.replace(b"1", b"2"))
        )
    with pytest.raises(WebhookVerificationError):
        provider.verify_webhook(WebhookRequest(headers={}, body=good.body))
    garbage = b"<xml/>"
    signature = hmac.new(SECRET.encode(), garbage, hashlib.sha512).hexdigest()
    with pytest.raises(MalformedWebhook):
        provider.verify_webhook(
            WebhookRequest(headers={"x-paystack-signature": signature}, body=garbage)
        )


async def test_transport_failures_and_refusals(fake: FakePaystack) -> None:
    bad_key = make(fake, secret_key="sk_test_wrong")
    with pytest.raises(BadCredentials):
        await bad_key.create_payment(checkout())
    assert not (await bad_key.test_credentials()).ok
    assert (await make(fake).test_credentials()).ok

    def outage(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>bad gateway</html>")

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    def not_json(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="maintenance")

    for handler in (outage, unreachable, slow, not_json):
        with pytest.raises(ProviderUnavailable):
            await make(handler).fetch_payment("ref")
    with pytest.raises(InvalidProviderRequest):
        await make(fake).fetch_payment("unknown-reference")
    with pytest.raises(InvalidProviderRequest, match="email"):
        await make(fake).create_payment(checkout(customer_email=None))


async def test_uses_configured_base_url() -> None:
    seen: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"status": True, "message": "ok", "data": []})

    await make(record, api_base_url="https://paystack.test/").test_credentials()
    await make(record).test_credentials()
    assert seen == ["https://paystack.test/balance", "https://api.paystack.co/balance"]
