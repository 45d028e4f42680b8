"""Bank transfer and cash: the providers without a payment API."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from providers.bank_transfer import BankTransferProvider, find_reference, transfer_reference
from providers.base import (
    CreatePayment,
    EventType,
    InvalidProviderRequest,
    MalformedWebhook,
    NotSupported,
    PaymentState,
    ProviderConfig,
    RefundRequest,
    RefundState,
    WebhookRequest,
    WebhookVerificationError,
)
from providers.cash import CashProvider

BANK = {
    "account_name": "Clinic Ltd",
    "account_number": "0071000888999",
    "bank_name": "Vietcombank",
    "currency": "VND",
    "timezone": "Asia/Ho_Chi_Minh",
}
FEED_KEY = "feed-api-key-123"


def bank(**config: Any) -> BankTransferProvider:
    return BankTransferProvider(
        ProviderConfig(
            tenant="clinic",
            code="bank_transfer",
            webhook_secret=FEED_KEY,
            config={**BANK, **config},
        )
    )


def order(currency: str = "VND", amount: int = 2_277_000) -> CreatePayment:
    return CreatePayment(
        order_id="8d0f7c1e-order",
        order_number="INV-0042",
        amount=amount,
        currency=currency,
        idempotency_key="checkout:8d0f7c1e-order",
    )


def feed(content: str, amount: Any = 2277000, kind: str = "in", **extra: Any) -> dict[str, Any]:
    """A SePay-style bank feed transaction."""
    return {
        "id": 92704,
        "gateway": "Vietcombank",
        "transactionDate": "2023-03-25 14:02:37",
        "accountNumber": "0071000888999",
        "code": None,
        "content": content,
        "transferType": kind,
        "transferAmount": amount,
        "accumulated": 19077000,
        "subAccount": None,
        "referenceCode": "MBVCB.3278907687",
        "description": "",
        **extra,
    }


def post(payload: dict[str, Any] | bytes, key: str = FEED_KEY) -> WebhookRequest:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return WebhookRequest(headers={"authorization": f"Apikey {key}"}, body=body)


def test_transfer_reference_is_short_unique_and_deterministic() -> None:
    reference = transfer_reference("8d0f7c1e-order")
    assert re.fullmatch(r"PM[A-Z2-7]{10}", reference)
    assert (
        reference == transfer_reference("8d0f7c1e-order") != transfer_reference("8d0f7c1e-order2")
    )
    assert len({transfer_reference(str(i)) for i in range(5000)}) == 5000
    assert find_reference(f"chuyen tien {reference.lower()} cam on") == reference
    assert find_reference(f"MBVCB.3278907687.{reference}.CT") == reference
    assert find_reference(f"IBFT{reference}FROM") == reference  # glued by the bank
    assert find_reference("no reference here") is None


async def test_create_gives_bank_details_and_reference() -> None:
    result = await bank(iban="VN00 0000", swift="BFTVVNVX").create_payment(order())
    reference = transfer_reference("8d0f7c1e-order")
    assert result.state is PaymentState.PENDING and result.provider_payment_id == reference
    assert result.instructions["reference"] == reference
    assert result.instructions["account_number"] == "0071000888999"
    assert (result.instructions["iban"], result.instructions["swift"]) == ("VN00 0000", "BFTVVNVX")
    fetched = await bank().fetch_payment(reference)
    assert fetched.state is PaymentState.PENDING
    refund = await bank().refund(
        RefundRequest(
            provider_payment_id=reference, amount=100, currency="VND", idempotency_key="r"
        )
    )
    assert refund.state is RefundState.MANUAL_REQUIRED and refund.provider_refund_id is None
    with pytest.raises(InvalidProviderRequest, match="VND"):
        await bank().create_payment(order(currency="USD"))
    incomplete = BankTransferProvider(
        ProviderConfig(tenant="t", code="bank_transfer", config={"bank_name": "X"})
    )
    with pytest.raises(InvalidProviderRequest, match="account_name"):
        await incomplete.create_payment(order())
    assert not (await incomplete.test_credentials()).ok
    assert (await bank().test_credentials()).ok


def test_incoming_transfer_becomes_payment_succeeded() -> None:
    reference = transfer_reference("8d0f7c1e-order")
    request = post(feed(f"{reference} thanh toan hoa don"))
    provider = bank()
    provider.verify_webhook(request)
    event = provider.parse_webhook(request)
    assert event.type is EventType.PAYMENT_SUCCEEDED
    assert (event.provider_payment_id, event.reference) == (reference, reference)
    assert (event.amount, event.currency) == (2_277_000, "VND")
    assert event.provider_event_id == "92704"
    assert event.occurred_at == datetime(2023, 3, 25, 7, 2, 37, tzinfo=UTC)
    assert event.data["transfer_amount"] == "2277000" and "thanh toan" in event.data["content"]
    assert event.data["account_matches"] is True


def test_amounts_in_major_units_are_exact() -> None:
    reference = transfer_reference("x")
    usd = BankTransferProvider(
        ProviderConfig(
            tenant="t",
            code="bank_transfer",
            webhook_secret=FEED_KEY,
            config={**BANK, "currency": "USD"},
        )
    )
    event = usd.parse_webhook(
        post(
            json.dumps(feed(reference, 0))
            .replace('"transferAmount": 0', '"transferAmount": 1234.56')
            .encode()
        )
    )
    assert (event.amount, event.currency) == (123456, "USD")
    with pytest.raises(MalformedWebhook):
        usd.parse_webhook(post(feed(reference, "12.345")))
    no_currency = BankTransferProvider(
        ProviderConfig(
            tenant="t",
            code="bank_transfer",
            webhook_secret=FEED_KEY,
            config={k: v for k, v in BANK.items() if k != "currency"},
        )
    )
    event = no_currency.parse_webhook(post(feed(reference, 50, currency="eur")))
    assert (event.amount, event.currency) == (5000, "EUR")


def test_outgoing_and_unmatched_transfers_are_ignored() -> None:
    out = bank().parse_webhook(post(feed(transfer_reference("x"), kind="out")))
    assert out.type is EventType.IGNORED
    unmatched = bank().parse_webhook(post(feed("rent march")))
    assert unmatched.type is EventType.IGNORED and unmatched.data["unmatched"] is True
    assert unmatched.data["content"] == "rent march"


def test_feed_authentication() -> None:
    payload = feed("x")
    with pytest.raises(WebhookVerificationError):
        bank().verify_webhook(post(payload, key="wrong"))
    with pytest.raises(WebhookVerificationError):
        bank().verify_webhook(
            WebhookRequest(headers={"authorization": f"Bearer {FEED_KEY}"}, body=b"{}")
        )
    with pytest.raises(WebhookVerificationError):
        bank().verify_webhook(WebhookRequest(headers={}, body=b"{}"))
    unconfigured = BankTransferProvider(
        ProviderConfig(tenant="t", code="bank_transfer", config=BANK)
    )
    with pytest.raises(WebhookVerificationError):
        unconfigured.verify_webhook(post(payload))
    with pytest.raises(MalformedWebhook):
        bank().verify_webhook(post(b"not json"))
    with pytest.raises(MalformedWebhook):
        bank().verify_webhook(post({"id": 1, "transferType": "sideways", "transferAmount": 1}))
    bank().verify_webhook(
        WebhookRequest(
            headers={"authorization": f"apikey {FEED_KEY}"}, body=json.dumps(payload).encode()
        )
    )


async def test_cash() -> None:
    cash = CashProvider(ProviderConfig(tenant="clinic", code="cash"))
    result = await cash.create_payment(order(currency="EUR", amount=4500))
    assert result.provider_payment_id == "cash_8d0f7c1e-order"
    assert result.state is PaymentState.PENDING and "desk" in result.instructions["message"]
    assert (await cash.fetch_payment(result.provider_payment_id)).state is PaymentState.PENDING
    refund = await cash.refund(
        RefundRequest(
            provider_payment_id=result.provider_payment_id,
            amount=4500,
            currency="EUR",
            idempotency_key="r",
        )
    )
    assert refund.state is RefundState.MANUAL_REQUIRED and refund.amount == 4500
    assert (await cash.test_credentials()).ok
    with pytest.raises(WebhookVerificationError):
        cash.verify_webhook(WebhookRequest(headers={}, body=b"{}"))
    with pytest.raises(NotSupported):
        cash.parse_webhook(WebhookRequest(headers={}, body=b"{}"))
