"""FlutterwaveProvider (v3) against a fake answering in Flutterwave's documented shapes.

Flutterwave counts in major units, so these tests pin the exact decimal conversion both
ways (JSON parsed with ``Decimal`` here too: a float would hide a rounding bug).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from providers.base import (
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
from providers.flutterwave import FlutterwaveProvider
from providers.flutterwave.provider import major_string, minor_units
from providers.transport import DEFAULT_TIMEOUT

SECRET = "FLWSECK_TEST-fake-X"
HASH = "my-secret-hash"


class FakeFlutterwave:
    def __init__(self) -> None:
        self.payments: dict[str, dict[str, Any]] = {}
        self.transactions: dict[str, dict[str, Any]] = {}
        self.sent: list[tuple[str, str, Any]] = []
        #: what the refund endpoint answers as the refund's status (``completed`` as in
        #: Flutterwave's reference; ``pending`` when its refund webhook completes it)
        self.refund_status = "completed"
        self.next_refund_id = 75923  # each refund its own id

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.extensions["timeout"] == DEFAULT_TIMEOUT.as_dict()
        body = json.loads(request.content, parse_float=Decimal) if request.content else None
        self.sent.append((request.method, request.url.path, body))
        if request.headers.get("authorization") != f"Bearer {SECRET}":
            return httpx.Response(
                401, json={"status": "error", "message": "Invalid authorization key", "data": None}
            )
        path = request.url.path.removeprefix("/v3")
        if (request.method, path) == ("POST", "/payments"):
            self.payments[body["tx_ref"]] = body
            return httpx.Response(
                200,
                json={
                    "status": "success",
                    "message": "Hosted Link",
                    "data": {
                        "link": f"https://checkout.flutterwave.com/v3/hosted/pay/{body['tx_ref'][:8]}"
                    },
                },
            )
        if (request.method, path) == ("GET", "/transactions/verify_by_reference"):
            tx = self.transactions.get(request.url.params["tx_ref"])
            if tx is None:
                return httpx.Response(
                    400,
                    json={
                        "status": "error",
                        "message": "No transaction was found for this id",
                        "data": None,
                    },
                )
            return httpx.Response(
                200,
                content=_dump(
                    {"status": "success", "message": "Transaction fetched successfully", "data": tx}
                ),
            )
        if request.method == "POST" and path.endswith("/refund"):
            tx_id = int(path.split("/")[2])
            refund_id, self.next_refund_id = self.next_refund_id, self.next_refund_id + 1
            return httpx.Response(
                200,
                content=_dump(
                    {
                        "status": "success",
                        "message": "Transaction refund initiated",
                        "data": {
                            "id": refund_id,
                            "account_id": 73362,
                            "tx_id": tx_id,
                            "flw_ref": "URF_1577867664541_3572735",
                            "wallet_id": 74639,
                            "amount_refunded": body["amount"],
                            "status": self.refund_status,
                            "destination": "payment_source",
                            "meta": {"source": "availablebalance"},
                            "created_at": "2021-01-24T09:18:37.000Z",
                        },
                    }
                ),
            )
        if (request.method, path) == ("GET", "/balances"):
            return httpx.Response(
                200, json={"status": "success", "message": "Wallet balances fetched", "data": []}
            )
        return httpx.Response(404, json={"status": "error", "message": "Not found", "data": None})

    def complete(self, tx_ref: str, *, amount: str, status: str = "successful") -> dict[str, Any]:
        """Flutterwave's transaction object after the customer paid (amounts in major units)."""
        payment = self.payments[tx_ref]
        tx = {
            "id": 288200108,
            "tx_ref": tx_ref,
            "flw_ref": "YemiDesola/FLW275407301",
            "device_fingerprint": "N/A",
            "amount": Decimal(amount),
            "currency": payment["currency"],
            "charged_amount": Decimal(amount),
            "app_fee": Decimal("17.28"),
            "merchant_fee": 0,
            "processor_response": "Approved by Financial Institution"
            if status == "successful"
            else "Declined",
            "auth_model": "PIN",
            "ip": "::ffff:10.5.179.3",
            "narration": "CARD Transaction ",
            "status": status,
            "payment_type": "card",
            "created_at": "2020-07-15T14:31:16.000Z",
            "account_id": 17321,
            "amount_settled": Decimal(amount) - Decimal("17.28"),
            "customer": {
                "id": 216519823,
                "name": "Yemi Desola",
                "phone_number": "N/A",
                "email": payment["customer"]["email"],
                "created_at": "2020-07-15T14:31:15.000Z",
            },
        }
        self.transactions[tx_ref] = tx
        return tx


def _dump(payload: Any) -> bytes:
    """JSON with ``Decimal`` values written as bare numbers, as Flutterwave sends amounts."""
    text = json.dumps(payload, default=lambda value: f"@@{value}@@")
    return text.replace('"@@', "").replace('@@"', "").encode()


def make(fake: Any, **config: Any) -> FlutterwaveProvider:
    settings = {
        "tenant": "shop",
        "code": "flutterwave",
        "secret_key": SECRET,
        "webhook_secret": HASH,
        **config,
    }
    return FlutterwaveProvider(
        ProviderConfig(**settings), httpx.AsyncClient(transport=httpx.MockTransport(fake))
    )


def checkout(
    amount: int = 123456, currency: str = "NGN", key: str = "checkout:order-9"
) -> CreatePayment:
    return CreatePayment(
        order_id="order-9",
        order_number="INV-9",
        amount=amount,
        currency=currency,
        idempotency_key=key,
        customer_email="ada@example.com",
        return_url="https://shop.example/back",
        description="Lens kit",
    )


def test_exact_major_unit_conversion() -> None:
    assert major_string(123456, "NGN") == "1234.56"
    assert major_string(1000, "JPY") == "1000"
    assert major_string(1234, "KWD") == "1.234"
    assert major_string(5, "USD") == "0.05"
    assert minor_units(Decimal("1234.56"), "NGN") == 123456
    assert minor_units(7500, "NGN") == 750000
    assert minor_units("0.1", "USD") == 10
    assert minor_units(Decimal("1.005"), "USD") is None  # finer than a cent: refused, not rounded


async def test_payment_link_verify_and_refund() -> None:
    fake = FakeFlutterwave()
    provider = make(fake)
    created = await provider.create_payment(checkout())
    assert created.redirect_url and created.redirect_url.startswith(
        "https://checkout.flutterwave.com/"
    )
    sent = fake.sent[0][2]
    assert sent["amount"] == "1234.56" and isinstance(sent["amount"], str)
    assert sent["tx_ref"] == created.provider_payment_id
    assert (
        sent["customer"] == {"email": "ada@example.com"}
        and sent["redirect_url"] == "https://shop.example/back"
    )
    assert sent["meta"]["order_id"] == "order-9"

    with pytest.raises(InvalidProviderRequest) as unpaid:
        await provider.fetch_payment(created.provider_payment_id)
    assert unpaid.value.code == "payment_not_found"

    fake.complete(created.provider_payment_id, amount="1234.56")
    paid = await provider.fetch_payment(created.provider_payment_id)
    assert paid.state is PaymentState.SUCCEEDED
    assert (paid.amount, paid.currency, paid.fee_amount) == (123456, "NGN", 1728)

    refund = await provider.refund(
        RefundRequest(
            provider_payment_id=created.provider_payment_id,
            amount=10050,
            currency="NGN",
            idempotency_key="r1",
        )
    )
    assert fake.sent[-1][1] == "/v3/transactions/288200108/refund"
    assert fake.sent[-1][2]["amount"] == "100.50"
    assert refund.state is RefundState.SUCCEEDED
    assert (refund.provider_refund_id, refund.amount) == ("75923", 10050)


async def test_refund_requires_a_successful_transaction() -> None:
    fake = FakeFlutterwave()
    provider = make(fake)
    created = await provider.create_payment(checkout(amount=1000, currency="JPY", key="k-jpy"))
    assert fake.sent[0][2]["amount"] == "1000"
    request = RefundRequest(
        provider_payment_id=created.provider_payment_id,
        amount=100,
        currency="JPY",
        idempotency_key="r",
    )
    with pytest.raises(InvalidProviderRequest):
        await provider.refund(request)
    fake.complete(created.provider_payment_id, amount="1000", status="failed")
    with pytest.raises(InvalidProviderRequest, match="successful"):
        await provider.refund(request)
    failed = await provider.fetch_payment(created.provider_payment_id)
    assert failed.state is PaymentState.FAILED and failed.failure_message == "Declined"


def webhook(data: dict[str, Any], **headers: str) -> WebhookRequest:
    return WebhookRequest(headers=headers, body=_dump({"event": "charge.completed", "data": data}))


async def test_webhooks_with_either_header() -> None:
    fake = FakeFlutterwave()
    provider = make(fake)
    created = await provider.create_payment(checkout())
    tx = fake.complete(created.provider_payment_id, amount="1234.56")

    by_hash = webhook(tx, **{"verif-hash": HASH})
    provider.verify_webhook(by_hash)
    event = provider.parse_webhook(by_hash)
    assert event.type is EventType.PAYMENT_SUCCEEDED
    assert (event.provider_payment_id, event.amount, event.currency) == (
        created.provider_payment_id,
        123456,
        "NGN",
    )
    assert (
        event.fee_amount == 1728
        and event.provider_event_id == "charge.completed:288200108:successful"
    )

    body = by_hash.body
    signature = base64.b64encode(hmac.new(HASH.encode(), body, hashlib.sha256).digest()).decode()
    provider.verify_webhook(WebhookRequest(headers={"flutterwave-signature": signature}, body=body))

    failed = provider.parse_webhook(webhook({**tx, "status": "failed"}))
    assert failed.type is EventType.PAYMENT_FAILED and failed.provider_event_id.endswith(":failed")
    pending = provider.parse_webhook(webhook({**tx, "status": "pending"}))
    assert pending.type is EventType.IGNORED

    with pytest.raises(WebhookVerificationError):
        provider.verify_webhook(webhook(tx, **{"verif-hash": "wrong"}))
    with pytest.raises(WebhookVerificationError):
        provider.verify_webhook(
            WebhookRequest(headers={"flutterwave-signature": signature}, body=body + b" ")
        )
    with pytest.raises(WebhookVerificationError):
        provider.verify_webhook(webhook(tx))
    with pytest.raises(MalformedWebhook):
        provider.verify_webhook(WebhookRequest(headers={"verif-hash": HASH}, body=b"[]"))
    with pytest.raises(WebhookVerificationError):
        make(fake, webhook_secret=None).verify_webhook(by_hash)


async def test_errors_and_base_url() -> None:
    fake = FakeFlutterwave()
    assert (await make(fake).test_credentials()).ok
    assert not (await make(fake, secret_key="FLWSECK_TEST-wrong").test_credentials()).ok
    with pytest.raises(ProviderUnavailable):
        await make(lambda r: httpx.Response(503)).create_payment(checkout())
    with pytest.raises(InvalidProviderRequest, match="email"):
        await make(fake).create_payment(
            CreatePayment(
                order_id="o",
                order_number="n",
                amount=1,
                currency="NGN",
                idempotency_key="k",
                return_url="https://x.example",
            )
        )
    seen: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"status": "success", "message": "ok", "data": []})

    await make(record, api_base_url="https://flw.example/v3").test_credentials()
    await make(record).test_credentials()
    assert seen == ["https://flw.example/v3/balances", "https://api.flutterwave.com/v3/balances"]
