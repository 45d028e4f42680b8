"""Sandbox hosted checkout: test cards through the page form, redirects, idempotent create.

End to end: provider → gateway HTTP API → hosted page (browser) → webhook → provider.
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import urlsplit

import pytest

from providers.base import (
    CreatePayment,
    EventType,
    InvalidProviderRequest,
    PaymentState,
)
from tests.providers.sandbox_harness import (
    DECLINED,
    NO_FUNDS,
    PUBLIC,
    SUCCESS,
    Sandbox,
    result_of,
)


async def test_success_card_pays_redirects_and_queues_signed_webhook(sandbox: Sandbox) -> None:
    payment_id = await sandbox.create(amount=123456, currency="USD")
    result = await sandbox.provider.fetch_payment(payment_id)
    assert result.redirect_url == f"{PUBLIC}/sandbox/checkout/{payment_id}"

    page = await sandbox.browser.get(f"/sandbox/checkout/{payment_id}")
    assert page.status_code == 200
    assert "1,234.56 USD" in page.text and 'name="card_number"' in page.text
    assert "<script" not in page.text.lower()

    query = result_of(await sandbox.pay(payment_id, "4242 4242 4242 4242"))
    assert query == {"x": ["1"], "payment_id": [payment_id], "status": ["succeeded"]}
    assert len(sandbox.dispatched) == 1

    paid = await sandbox.provider.fetch_payment(payment_id)
    assert paid.state is PaymentState.SUCCEEDED and paid.amount == 123456
    assert paid.fee_amount == 3610  # 2.9 % of 1,234.56 rounded half up, + 30 (the quote)
    assert paid.redirect_url is None

    # Paying again changes nothing and sends nothing: the page is idempotent.
    assert result_of(await sandbox.pay(payment_id, DECLINED))["status"] == ["succeeded"]
    assert len(sandbox.dispatched) == 1
    again = await sandbox.browser.get(f"/sandbox/checkout/{payment_id}")
    assert "has been paid" in again.text and 'name="card_number"' not in again.text

    sent = await sandbox.deliver(sandbox.dispatched[0])
    assert str(sent.url) == f"{PUBLIC}/webhooks/acme/sandbox"
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", sent.headers["sandbox-signature"])
    webhook = sandbox.as_webhook(sent)
    sandbox.provider.verify_webhook(webhook)
    event = sandbox.provider.parse_webhook(webhook)
    assert event.type is EventType.PAYMENT_SUCCEEDED
    assert event.provider_payment_id == payment_id
    assert (event.amount, event.currency, event.fee_amount) == (123456, "USD", 3610)
    assert event.provider_event_id.startswith("evt_")
    assert event.reference is not None and len(event.reference) == 32  # our order id


@pytest.mark.parametrize(
    ("card", "code"), [(DECLINED, "card_declined"), (NO_FUNDS, "insufficient_funds")]
)
async def test_failing_cards(sandbox: Sandbox, card: str, code: str) -> None:
    payment_id = await sandbox.create()
    assert result_of(await sandbox.pay(payment_id, card))["status"] == ["failed"]
    result = await sandbox.provider.fetch_payment(payment_id)
    assert result.state is PaymentState.FAILED and result.failure_code == code
    webhook = sandbox.as_webhook(await sandbox.deliver(sandbox.dispatched[0]))
    sandbox.provider.verify_webhook(webhook)
    event = sandbox.provider.parse_webhook(webhook)
    assert event.type is EventType.PAYMENT_FAILED and event.data["failure_code"] == code
    # A failed attempt is final; the success card cannot revive it.
    assert result_of(await sandbox.pay(payment_id, SUCCESS))["status"] == ["failed"]
    assert len(sandbox.dispatched) == 1


async def test_unknown_card_shows_friendly_error_and_keeps_payment_open(sandbox: Sandbox) -> None:
    payment_id = await sandbox.create(amount=500, currency="JPY")
    page = await sandbox.pay(payment_id, "1234 5678")
    assert page.status_code == 422
    assert "not a sandbox test card" in page.text and "500 JPY" in page.text
    assert sandbox.dispatched == []
    assert (await sandbox.provider.fetch_payment(payment_id)).state is PaymentState.PENDING
    missing = await sandbox.browser.get("/sandbox/checkout/pay_nope")
    assert missing.status_code == 404


async def test_cancel_returns_to_cancel_url(sandbox: Sandbox) -> None:
    payment_id = await sandbox.create(cancel_url="https://shop.example/cancelled")
    response = await sandbox.browser.post(
        f"/sandbox/checkout/{payment_id}/cancel", follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith("https://shop.example/cancelled?payment_id=")
    assert (await sandbox.provider.fetch_payment(payment_id)).state is PaymentState.CANCELLED


async def test_merchant_text_is_escaped_on_the_page(sandbox: Sandbox) -> None:
    order = uuid.uuid4().hex
    result = await sandbox.provider.create_payment(
        CreatePayment(
            order_id=order,
            order_number="<b>INV</b>",
            amount=1500,
            currency="KWD",
            idempotency_key=order,
            description="<script>alert(1)</script>",
        )
    )
    page = await sandbox.browser.get(urlsplit(result.redirect_url or "").path)
    assert "<script>alert" not in page.text and "&lt;script&gt;" in page.text
    assert "1.500 KWD" in page.text


async def test_create_is_idempotent_by_key(sandbox: Sandbox) -> None:
    request = CreatePayment(
        order_id="o-1",
        order_number="INV-1",
        amount=2000,
        currency="EUR",
        idempotency_key=f"k-{uuid.uuid4().hex}",
    )
    first = await sandbox.provider.create_payment(request)
    second = await sandbox.provider.create_payment(request)
    assert first.provider_payment_id == second.provider_payment_id
    with pytest.raises(InvalidProviderRequest, match="different parameters") as reused:
        await sandbox.provider.create_payment(CreatePayment(**{**_fields(request), "amount": 2001}))
    assert reused.value.code == "idempotency_key_reused"
    other = await sandbox.provider.create_payment(
        CreatePayment(**{**_fields(request), "idempotency_key": "another"})
    )
    assert other.provider_payment_id != first.provider_payment_id


def _fields(request: CreatePayment) -> dict[str, object]:
    return {f: getattr(request, f) for f in request.__struct_fields__}
