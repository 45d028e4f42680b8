"""Stripe webhooks localstripe cannot produce (Connect, disputes, refunds, accounts), signed
like Stripe signs them. Each test runs on our builders of Stripe's documented objects
(``tests/providers/payloads.py``) and again on Stripe's published example objects when
that file is available (``stripe_objects[published]``, skipped otherwise).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
import stripe

from providers.base import (
    BadCredentials,
    EventType,
    InsufficientFunds,
    InvalidProviderRequest,
    MalformedWebhook,
    PaymentDeclined,
    ProviderConfig,
    ProviderUnavailable,
    StaleWebhook,
    WebhookRequest,
    WebhookVerificationError,
)
from providers.stripe import StripeProvider, map_stripe_error
from providers.stripe.amounts import from_stripe, to_stripe

SECRET = "whsec_fixture_tests"
PROVIDER = StripeProvider(
    ProviderConfig(tenant="acme", code="stripe", secret_key="sk_test_x", webhook_secret=SECRET)
)


def event(fixtures: dict[str, Any], kind: str, obj: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The example event envelope carrying ``obj``."""
    envelope = copy.deepcopy(fixtures["event"])
    envelope.update(id=f"evt_{kind.replace('.', '_')}", type=kind, data={"object": obj}, **extra)
    return envelope


def signed(
    body: dict[str, Any] | bytes, *, secret: str = SECRET, at: int | None = None
) -> WebhookRequest:
    """Sign exactly as Stripe does: HMAC-SHA256(secret, f"{t}.{payload}"), hex."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    stamp = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + raw, hashlib.sha256).hexdigest()
    return WebhookRequest(headers={"stripe-signature": f"t={stamp},v1={mac}"}, body=raw)


def receive(body: dict[str, Any]) -> Any:
    request = signed(body)
    PROVIDER.verify_webhook(request)
    return PROVIDER.parse_webhook(request)


def test_signature_compatible_with_the_sdk(stripe_objects: dict[str, Any]) -> None:
    payload = json.dumps(event(stripe_objects, "account.updated", stripe_objects["account"]))
    header = stripe.WebhookSignature.generate_signature_header(payload, SECRET)
    PROVIDER.verify_webhook(
        WebhookRequest(headers={"stripe-signature": header}, body=payload.encode())
    )


def test_dispute_created_and_closed(stripe_objects: dict[str, Any]) -> None:
    dispute = copy.deepcopy(stripe_objects["dispute"])
    dispute["payment_intent"] = "pi_disputed"
    opened = receive(event(stripe_objects, "charge.dispute.created", dispute))
    assert opened.type is EventType.DISPUTE_OPENED
    assert opened.provider_dispute_id == dispute["id"]
    assert (opened.provider_payment_id, opened.amount, opened.currency) == (
        "pi_disputed",
        1000,
        "USD",
    )
    assert opened.data["charge"] == dispute["charge"] and opened.data["reason"] == "general"

    for status, outcome in (("won", "won"), ("lost", "lost"), ("warning_closed", "won")):
        closed = receive(
            event(stripe_objects, "charge.dispute.closed", {**dispute, "status": status})
        )
        assert closed.type is EventType.DISPUTE_CLOSED and closed.data["outcome"] == outcome
        assert closed.fee_amount is None  # no balance transactions: no fee reported

    # lost: the fee of the dispute's balance transactions is reported
    fee = {"object": "balance_transaction", "amount": -1000, "currency": "usd", "fee": 1500,
           "net": -2500, "type": "adjustment"}
    lost = receive(event(stripe_objects, "charge.dispute.closed",
                         {**dispute, "status": "lost", "balance_transactions": [fee]}))
    assert (lost.data["outcome"], lost.fee_amount) == ("lost", 1500)
    # won with the fee given back: none left
    back = {**fee, "amount": 1000, "fee": -1500, "net": 2500}
    won = receive(event(stripe_objects, "charge.dispute.closed",
                        {**dispute, "status": "won", "balance_transactions": [fee, back]}))
    assert won.fee_amount is None


def test_dispute_with_expanded_payment_intent(stripe_objects: dict[str, Any]) -> None:
    dispute = {**stripe_objects["dispute"], "payment_intent": stripe_objects["payment_intent"]}
    parsed = receive(event(stripe_objects, "charge.dispute.created", dispute))
    assert parsed.provider_payment_id == stripe_objects["payment_intent"]["id"]


def test_account_updated_from_connect(stripe_objects: dict[str, Any]) -> None:
    account = stripe_objects["account"]
    parsed = receive(event(stripe_objects, "account.updated", account, account=account["id"]))
    assert parsed.type is EventType.ACCOUNT_UPDATED
    assert parsed.provider_account_id == account["id"]
    assert parsed.data["charges_enabled"] is False and parsed.data["payouts_enabled"] is False
    assert "external_account" in parsed.data["currently_due"]
    assert parsed.data["disabled_reason"] == "requirements.past_due"


def test_connect_payment_intent_succeeded(stripe_objects: dict[str, Any]) -> None:
    pi = copy.deepcopy(stripe_objects["payment_intent"])
    pi.update(
        status="succeeded",
        amount_received=1099,
        application_fee_amount=123,
        metadata={"order_id": "order-7"},
        latest_charge="ch_123",
        last_payment_error=None,
    )
    parsed = receive(event(stripe_objects, "payment_intent.succeeded", pi, account="acct_seller"))
    assert parsed.type is EventType.PAYMENT_SUCCEEDED
    assert (parsed.amount, parsed.currency, parsed.reference) == (1099, "USD", "order-7")
    assert parsed.provider_account_id == "acct_seller"
    assert parsed.data["application_fee_amount"] == 123
    destination = pi["transfer_data"]["destination"]["id"]  # an expanded destination object
    assert parsed.data["destination_account"] == destination
    assert parsed.data["charge"] == "ch_123"

    pi["latest_charge"] = {**stripe_objects["charge"], "id": "ch_123"}  # embedded charge
    assert (
        receive(event(stripe_objects, "payment_intent.succeeded", pi)).data["charge"] == "ch_123"
    )


def test_payment_failed_carries_decline(stripe_objects: dict[str, Any]) -> None:
    pi = copy.deepcopy(stripe_objects["payment_intent"])
    pi["last_payment_error"] = {
        "code": "card_declined",
        "decline_code": "insufficient_funds",
        "message": "Your card has insufficient funds.",
    }
    parsed = receive(event(stripe_objects, "payment_intent.payment_failed", pi))
    assert parsed.type is EventType.PAYMENT_FAILED
    assert parsed.data["failure_code"] == "insufficient_funds"


def test_refund_events(stripe_objects: dict[str, Any]) -> None:
    refund = {
        **stripe_objects["refund"],
        "payment_intent": "pi_r",
        "metadata": {"paymesh_idempotency_key": "refund-key"},
    }
    charge = copy.deepcopy(stripe_objects["charge"])
    charge.update(payment_intent="pi_r", amount_refunded=100, refunded=False)
    charge["refunds"] = {"object": "list", "data": [refund], "has_more": False}

    from_charge = receive(event(stripe_objects, "charge.refunded", charge))
    assert from_charge.type is EventType.REFUND_SUCCEEDED
    assert (from_charge.provider_refund_id, from_charge.provider_payment_id) == (
        refund["id"],
        "pi_r",
    )
    assert from_charge.amount == 100 and from_charge.data["amount_refunded_total"] == 100

    updated = receive(event(stripe_objects, "charge.refund.updated", refund))
    assert updated.type is EventType.REFUND_SUCCEEDED
    assert updated.data["idempotency_key"] == "refund-key"
    failed = receive(event(stripe_objects, "refund.updated", {**refund, "status": "failed"}))
    assert failed.type is EventType.REFUND_FAILED
    pending = receive(event(stripe_objects, "refund.updated", {**refund, "status": "pending"}))
    assert pending.type is EventType.IGNORED


def test_other_events_are_ignored(stripe_objects: dict[str, Any]) -> None:
    parsed = receive(stripe_objects["event"])  # the example event: plan.created
    assert (
        parsed.type is EventType.IGNORED
        and parsed.provider_event_id == stripe_objects["event"]["id"]
    )
    session = receive(
        event(stripe_objects, "checkout.session.completed", stripe_objects["checkout.session"])
    )
    assert session.type is EventType.IGNORED


def test_forged_stale_and_malformed(stripe_objects: dict[str, Any]) -> None:
    body = event(stripe_objects, "account.updated", stripe_objects["account"])
    with pytest.raises(WebhookVerificationError):
        PROVIDER.verify_webhook(signed(body, secret="whsec_attacker"))
    with pytest.raises(StaleWebhook):
        PROVIDER.verify_webhook(signed(body, at=int(time.time()) - 301))
    with pytest.raises(WebhookVerificationError):
        PROVIDER.verify_webhook(WebhookRequest(headers={}, body=json.dumps(body).encode()))
    for garbage in (b"not json at all", b"[]", b'"event"', b"\xff\xfe"):
        with pytest.raises(MalformedWebhook):
            PROVIDER.verify_webhook(signed(garbage))
    with pytest.raises(MalformedWebhook):
        PROVIDER.verify_webhook(signed(b'{"id": "evt_1", "type": "x"}'))
    tampered = signed(body)
    with pytest.raises(WebhookVerificationError):
        PROVIDER.verify_webhook(WebhookRequest(headers=tampered.headers, body=tampered.body + b" "))


def test_sdk_errors_map_onto_the_provider_error_tree() -> None:
    card = stripe.CardError(
        "Your card has insufficient funds.",
        None,
        "card_declined",
        http_status=402,
        json_body={
            "error": {
                "code": "card_declined",
                "decline_code": "insufficient_funds",
                "type": "card_error",
                "message": "no funds",
            }
        },
    )
    assert isinstance(map_stripe_error(card), InsufficientFunds)
    expired = stripe.CardError(
        "Expired.",
        None,
        "expired_card",
        http_status=402,
        json_body={"error": {"code": "expired_card", "type": "card_error"}},
    )
    mapped = map_stripe_error(expired)
    assert type(mapped) is PaymentDeclined and mapped.code == "expired_card"
    assert isinstance(
        map_stripe_error(stripe.AuthenticationError("bad key", http_status=401)), BadCredentials
    )
    assert isinstance(map_stripe_error(stripe.APIConnectionError("down")), ProviderUnavailable)
    assert isinstance(
        map_stripe_error(stripe.APIError("boom", http_status=500)), ProviderUnavailable
    )
    assert isinstance(
        map_stripe_error(stripe.RateLimitError("slow down", http_status=429)), ProviderUnavailable
    )
    invalid = stripe.InvalidRequestError("No such payment_intent", "id", http_status=404)
    assert isinstance(map_stripe_error(invalid), InvalidProviderRequest)


def test_amount_units_follow_stripe_not_iso() -> None:
    assert to_stripe(1234, "USD") == 1234 and to_stripe(500, "JPY") == 500
    assert to_stripe(1000, "ISK") == 100000 and from_stripe(100000, "ISK") == 1000
    assert to_stripe(12340, "KWD") == 12340
    assert to_stripe(1500, "MGA") == 15 and from_stripe(15, "MGA") == 1500
    with pytest.raises(InvalidProviderRequest):
        to_stripe(1550, "MGA")  # 15.50 ariary: Stripe charges MGA in whole units
