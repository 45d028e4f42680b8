"""``PolarProvider`` through polar-sdk against the model-built Polar double.

Webhook signatures are produced here the Standard Webhooks way and checked with the SDK's
own verifier (``polar.v2026_10.webhooks.validate_event``) as well as the provider's, for
both key derivations Polar uses; the provider's window is tested with an explicit ``now``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from polar.v2026_10.webhooks import PolarWebhookVerificationError, validate_event

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
    StaleWebhook,
    WebhookRequest,
    WebhookVerificationError,
)
from providers.polar import PolarProvider
from providers.redaction import redact
from tests.providers.fake_polar import TOKEN, FakePolar, dumps

pytestmark = pytest.mark.asyncio

#: A Standard Webhooks secret (``whsec_`` + base64 of random bytes).
SECRET = "whsec_" + base64.b64encode(b"paymesh-polar-test-signing-key!!").decode()
PRODUCT = "prod-paymesh-consultation"


def signature(key: bytes, webhook_id: str, stamp: int, body: bytes) -> str:
    mac = hmac.new(key, f"{webhook_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def standard_key(secret: str) -> bytes:
    """The Standard Webhooks key: the base64 payload after ``whsec_``."""
    return base64.b64decode(secret.removeprefix("whsec_"))


def signed(payload: dict[str, Any], *, secret: str = SECRET, key: bytes | None = None,
           stamp: int | None = None, webhook_id: str | None = None,
           check_with_sdk: bool = True) -> tuple[dict[str, str], bytes]:
    """Headers and body of one delivery, signed as Polar signs (Standard Webhooks key by
    default); a fresh one is first accepted by the SDK's own verifier."""
    body = dumps(payload)
    stamp = int(time.time()) if stamp is None else stamp
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    headers = {"webhook-id": webhook_id, "webhook-timestamp": str(stamp),
               "webhook-signature": signature(key or standard_key(secret), webhook_id, stamp,
                                              body)}
    if check_with_sdk:
        validate_event(body, headers, secret)
    return headers, body


@pytest.fixture
async def fake() -> AsyncIterator[FakePolar]:
    double = FakePolar()
    await double.start()
    yield double
    await double.stop()


def make(fake: FakePolar, *, token: str = TOKEN, **config: Any) -> PolarProvider:
    return PolarProvider(ProviderConfig(
        tenant="clinic", code="polar", api_base_url=fake.url, secret_key=token,
        webhook_secret=SECRET, config={"product_id": PRODUCT, **config}))


def order_request(key: str = "clinic:order-1:1", amount: int = 4_250) -> CreatePayment:
    return CreatePayment(order_id="order-1", order_number="INV-1", amount=amount,
                         currency="USD", idempotency_key=key,
                         customer_email="patient@example.com",
                         return_url="https://pay.example/ok", cancel_url="https://pay.example/no",
                         metadata={"order_id": "order-1", "order_number": "INV-1"})


# ----------------------------------------------------------------------------- checkout


async def test_checkout_is_an_ad_hoc_price_for_the_product_without_polar_discounts(fake):
    provider = make(fake)
    result = await provider.create_payment(order_request())
    assert result.state is PaymentState.PENDING
    assert (result.amount, result.currency) == (4_250, "USD")
    assert result.redirect_url and result.provider_payment_id in fake.checkouts
    sent = [body for method, path, body in fake.requests
            if (method, path) == ("POST", "/v1/checkouts/")]
    assert len(sent) == 1
    body = sent[0]
    assert body["products"] == [PRODUCT]
    assert body["prices"] == {PRODUCT: [{"amount_type": "fixed", "price_amount": 4_250,
                                         "price_currency": "usd"}]}
    assert body["allow_discount_codes"] is False and "discount_id" not in body
    assert body["metadata"]["order_id"] == "order-1"
    assert body["metadata"]["paymesh_idempotency_key"] == "clinic:order-1:1"
    assert body["success_url"] == "https://pay.example/ok"


async def test_a_retried_create_finds_the_first_checkout(fake):
    provider = make(fake)
    first = await provider.create_payment(order_request())
    again = await provider.create_payment(order_request())
    other = await provider.create_payment(order_request("clinic:order-1:2"))
    assert again.provider_payment_id == first.provider_payment_id
    assert other.provider_payment_id != first.provider_payment_id
    assert len(fake.checkouts) == 2


async def test_without_product_id_nothing_is_sent(fake):
    provider = PolarProvider(ProviderConfig(tenant="t", code="polar", api_base_url=fake.url,
                                            secret_key=TOKEN, webhook_secret=SECRET))
    with pytest.raises(InvalidProviderRequest, match="product_id"):
        await provider.create_payment(order_request())
    assert fake.requests == []


async def test_fetch_payment_reads_the_checkout_then_its_paid_order(fake):
    provider = make(fake)
    created = await provider.create_payment(order_request())
    pending = await provider.fetch_payment(created.provider_payment_id)
    assert pending.state is PaymentState.PENDING
    fake.pay(created.provider_payment_id)
    paid = await provider.fetch_payment(created.provider_payment_id)
    assert (paid.state, paid.amount, paid.currency) == (PaymentState.SUCCEEDED, 4_250, "USD")


async def test_errors_map_onto_the_provider_tree(fake):
    with pytest.raises(BadCredentials):
        await make(fake, token="polar_oat_wrong").create_payment(order_request())
    check = await make(fake, token="polar_oat_wrong").test_credentials()
    assert not check.ok and "polar_oat_wrong" not in check.message
    assert (await make(fake).test_credentials()).ok
    with pytest.raises(InvalidProviderRequest) as missing:
        await make(fake).fetch_payment("no-such-checkout")
    assert missing.value.code == "payment_not_found"
    url = fake.url
    await fake.stop()
    provider = PolarProvider(ProviderConfig(tenant="t", code="polar", api_base_url=url,
                                            secret_key=TOKEN, config={"product_id": "p"}))
    with pytest.raises(ProviderUnavailable):
        await provider.create_payment(order_request())


async def test_key_checks_and_redaction():
    assert PolarProvider.check_key("secret_key", "sk_live_abc")
    assert PolarProvider.check_key("secret_key", "polar_oat_abc") is None
    assert "polar_oat_abcdef123" not in redact("token polar_oat_abcdef123 refused")


# ----------------------------------------------------------------------------- refunds


async def test_refund_sends_polars_reason_keeps_ours_and_is_idempotent(fake):
    provider = make(fake)
    created = await provider.create_payment(order_request())
    fake.pay(created.provider_payment_id)
    request = RefundRequest(provider_payment_id=created.provider_payment_id, amount=1_000,
                            currency="USD", idempotency_key="clinic:refund:r1",
                            reason="patient moved to another city")
    result = await provider.refund(request)
    assert (result.state, result.amount, result.currency) == (RefundState.SUCCEEDED, 1_000,
                                                             "USD")
    again = await provider.refund(request)
    assert again.provider_refund_id == result.provider_refund_id and len(fake.refunds) == 1
    refund = fake.refunds[result.provider_refund_id]
    assert refund["reason"] == "customer_request"
    assert refund["metadata"]["paymesh_reason"] == "patient moved to another city"
    assert refund["metadata"]["paymesh_idempotency_key"] == "clinic:refund:r1"
    assert refund["metadata"]["paymesh_checkout_id"] == created.provider_payment_id
    assert refund["revoke_benefits"] is False

    fraud = await provider.refund(RefundRequest(
        provider_payment_id=created.provider_payment_id, amount=500, currency="USD",
        idempotency_key="clinic:refund:r2", reason="fraudulent"))
    assert fake.refunds[fraud.provider_refund_id]["reason"] == "fraudulent"
    with pytest.raises(InvalidProviderRequest, match="exceeds"):
        await provider.refund(RefundRequest(
            provider_payment_id=created.provider_payment_id, amount=2_751, currency="USD",
            idempotency_key="clinic:refund:r3"))
    with pytest.raises(InvalidProviderRequest, match="no paid order"):
        await provider.refund(RefundRequest(provider_payment_id="unpaid", amount=1,
                                            currency="USD", idempotency_key="k"))


# ----------------------------------------------------------------------------- discounts


async def test_discount_get_update_delete_and_404(fake):
    provider = make(fake)
    discount_id = fake.add_discount(max_redemptions=3, redemptions=1)
    found = await provider.get_discount(discount_id)
    assert found is not None
    assert (found.id, found.max_redemptions, found.redemptions_count) == (discount_id, 3, 1)
    updated = await provider.update_discount_max_redemptions(discount_id, 2)
    assert updated.max_redemptions == 2 and fake.discounts[discount_id]["max_redemptions"] == 2
    unlimited = await provider.get_discount(fake.add_discount(max_redemptions=None))
    assert unlimited is not None and unlimited.max_redemptions is None
    assert await provider.delete_discount(discount_id) is True
    assert await provider.delete_discount(discount_id) is False
    assert await provider.get_discount(discount_id) is None
    with pytest.raises(InvalidProviderRequest):
        await provider.update_discount_max_redemptions(discount_id, 1)


# ----------------------------------------------------------------------------- webhooks


async def _order_paid(fake: FakePolar) -> dict[str, Any]:
    """The ``order.paid`` payload of a checkout the provider created and the customer paid."""
    created = await make(fake).create_payment(order_request(f"clinic:order-1:{uuid.uuid4()}"))
    return fake.pay(created.provider_payment_id)


async def test_both_key_derivations_verify_like_the_sdk(fake):
    provider = make(fake)
    payload = await _order_paid(fake)
    for key in (standard_key(SECRET), SECRET.encode()):  # Standard Webhooks; Polar's raw
        headers, body = signed(payload, key=key)
        provider.verify_webhook(WebhookRequest(headers=headers, body=body))


async def test_forged_tampered_and_stale_deliveries_are_refused_by_both(fake):
    provider = make(fake)
    payload = await _order_paid(fake)
    now = datetime.now(UTC)
    stamp = int(now.timestamp())
    cases = {
        "wrong key": signed(payload, key=b"not-the-secret", stamp=stamp, check_with_sdk=False),
        "tampered": (signed(payload)[0], signed(payload)[1].replace(b"4250", b"4251")),
        "no signature": ({"webhook-id": "msg_1", "webhook-timestamp": str(stamp)},
                         dumps(payload)),
        "other scheme": ({**signed(payload)[0], "webhook-signature": "v2,abc"},
                         signed(payload)[1]),
    }
    for name, (headers, body) in cases.items():
        with pytest.raises(PolarWebhookVerificationError):
            validate_event(body, headers, SECRET)
        with pytest.raises(WebhookVerificationError) as refused:
            provider.verify_webhook(WebhookRequest(headers=headers, body=body), now=now)
        assert not isinstance(refused.value, StaleWebhook), name
    old = stamp - 301
    headers, body = signed(payload, stamp=old, check_with_sdk=False)
    with pytest.raises(PolarWebhookVerificationError, match="too old"):
        validate_event(body, headers, SECRET)
    with pytest.raises(StaleWebhook):
        provider.verify_webhook(WebhookRequest(headers=headers, body=body), now=now)
    # the same delivery inside the window of its own time: accepted
    provider.verify_webhook(WebhookRequest(headers=headers, body=body),
                            now=now - timedelta(seconds=301))
    # authentic but not an event
    headers, body = signed({"type": "order.paid"}, check_with_sdk=False)
    with pytest.raises(MalformedWebhook):
        provider.verify_webhook(WebhookRequest(headers=headers, body=body))


async def test_events_are_normalized(fake):
    provider = make(fake)
    payload = await _order_paid(fake)
    order = payload["data"]
    headers, body = signed(payload, webhook_id="msg_paid")
    paid = provider.parse_webhook(WebhookRequest(headers=headers, body=body))
    assert (paid.type, paid.provider_event_id) == (EventType.PAYMENT_SUCCEEDED, "msg_paid")
    assert (paid.provider_payment_id, paid.amount, paid.currency, paid.reference) == (
        order["checkout_id"], 4_250, "USD", "order-1")
    assert paid.data["polar_order_id"] == order["id"]

    fake.refund_status = "pending"
    created = await make(fake).create_payment(order_request())
    fake.pay(created.provider_payment_id)
    sent = await make(fake).refund(RefundRequest(
        provider_payment_id=created.provider_payment_id, amount=700, currency="USD",
        idempotency_key="clinic:refund:x", reason="changed mind"))
    assert sent.state is RefundState.PENDING
    refund = fake.refunds[sent.provider_refund_id]
    expected = {"pending": EventType.IGNORED, "succeeded": EventType.REFUND_SUCCEEDED,
                "failed": EventType.REFUND_FAILED, "canceled": EventType.REFUND_FAILED}
    for status, kind in expected.items():
        for name in ("refund.created", "refund.updated"):
            headers, body = signed(fake.event(name, {**refund, "status": status}))
            event = provider.parse_webhook(WebhookRequest(headers=headers, body=body))
            assert event.type is kind, (name, status)
            assert (event.provider_refund_id, event.provider_payment_id, event.amount) == (
                refund["id"], created.provider_payment_id, 700)
            assert event.data["reason"] == "changed mind"

    headers, body = signed(fake.event("order.refunded", fake.orders[refund["order_id"]]))
    assert provider.parse_webhook(WebhookRequest(headers=headers, body=body)).type is (
        EventType.IGNORED)
    checkout = fake.checkouts[created.provider_payment_id]
    for status, kind in (("failed", EventType.PAYMENT_FAILED), ("expired", EventType.IGNORED),
                         ("succeeded", EventType.IGNORED)):
        headers, body = signed(fake.event("checkout.updated", {**checkout, "status": status}))
        event = provider.parse_webhook(WebhookRequest(headers=headers, body=body))
        assert event.type is kind, status
