"""Provider payloads built from the providers' documented shapes, in our own code.

Only the fields Paymesh reads (plus the identifying ones a real payload always carries)
are built, with the types and values Stripe's and Paystack's API references document.
``tests/providers/test_published_contracts.py`` checks these builders against the
published reference files when they are available (see :mod:`tests.providers.published`).
"""

from __future__ import annotations

import copy
from typing import Any

# --- Stripe (https://docs.stripe.com/api): one builder per resource the tests use ----------


def stripe_event(kind: str = "plan.created", obj: dict[str, Any] | None = None,
                 **extra: Any) -> dict[str, Any]:
    """An ``event`` envelope carrying ``obj`` as ``data.object``."""
    envelope: dict[str, Any] = {
        "id": f"evt_{kind.replace('.', '_')}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": 1234567890,
        "data": {"object": obj if obj is not None else stripe_plan()},
        "livemode": False,
        "pending_webhooks": 0,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
    }
    envelope.update(extra)
    return envelope


def stripe_plan() -> dict[str, Any]:
    return {"id": "price_1", "object": "plan", "active": True, "amount": 2000,
            "currency": "usd", "interval": "month", "livemode": False, "metadata": {}}


def stripe_payment_intent() -> dict[str, Any]:
    return {
        "id": "pi_1",
        "object": "payment_intent",
        "amount": 1099,
        "amount_received": 0,
        "application_fee_amount": None,
        "client_secret": "pi_1_secret_x",
        "created": 1234567890,
        "currency": "usd",
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": {},
        "status": "requires_payment_method",
        "transfer_data": {"destination": {"id": "acct_destination", "object": "account"}},
    }


def stripe_charge() -> dict[str, Any]:
    return {
        "id": "ch_1",
        "object": "charge",
        "amount": 100,
        "amount_refunded": 0,
        "created": 1234567890,
        "currency": "usd",
        "livemode": False,
        "metadata": {},
        "paid": True,
        "payment_intent": None,
        "refunded": False,
        "refunds": {"object": "list", "data": [], "has_more": False,
                    "url": "/v1/charges/ch_1/refunds"},
        "status": "succeeded",
    }


def stripe_refund() -> dict[str, Any]:
    return {
        "id": "re_1",
        "object": "refund",
        "amount": 100,
        "charge": "ch_1",
        "created": 1234567890,
        "currency": "usd",
        "metadata": {},
        "payment_intent": None,
        "reason": None,
        "status": "succeeded",
    }


def stripe_dispute() -> dict[str, Any]:
    return {
        "id": "dp_1",
        "object": "dispute",
        "amount": 1000,
        "charge": "ch_1",
        "created": 1234567890,
        "currency": "usd",
        "livemode": False,
        "metadata": {},
        "payment_intent": None,
        "reason": "general",
        "status": "warning_needs_response",
    }


def stripe_account() -> dict[str, Any]:
    due = ["business_profile.url", "external_account", "tos_acceptance.date"]
    return {
        "id": "acct_1",
        "object": "account",
        "charges_enabled": False,
        "country": "US",
        "created": 1234567890,
        "default_currency": "usd",
        "details_submitted": False,
        "metadata": {},
        "payouts_enabled": False,
        "requirements": {"currently_due": list(due), "disabled_reason": "requirements.past_due",
                         "eventually_due": list(due), "past_due": []},
        "type": "standard",
    }


def stripe_checkout_session() -> dict[str, Any]:
    return {
        "id": "cs_test_1",
        "object": "checkout.session",
        "amount_total": None,
        "cancel_url": "https://example.com/cancel",
        "created": 1234567890,
        "currency": None,
        "livemode": False,
        "metadata": {},
        "mode": "payment",
        "payment_intent": "pi_1",
        "payment_status": "unpaid",
        "status": "open",
        "success_url": "https://example.com/success",
        "url": "https://checkout.stripe.com/pay/c/cs_test_1",
    }


_STRIPE_BUILDERS = {
    "event": stripe_event,
    "payment_intent": stripe_payment_intent,
    "charge": stripe_charge,
    "refund": stripe_refund,
    "dispute": stripe_dispute,
    "account": stripe_account,
    "checkout.session": stripe_checkout_session,
}


def stripe_objects() -> dict[str, dict[str, Any]]:
    """Every Stripe resource the tests use, keyed like Stripe's fixture file's resources."""
    return {name: build() for name, build in _STRIPE_BUILDERS.items()}


# --- Paystack (https://paystack.com/docs/api): documented error bodies ---------------------

PAYSTACK_UNAUTHORIZED: dict[str, Any] = {"status": False, "message": "Invalid key"}
PAYSTACK_NOT_FOUND: dict[str, Any] = {"status": False, "message": "Entity not found"}
PAYSTACK_DUPLICATE_REFERENCE: dict[str, Any] = {
    "status": False,
    "message": "Duplicate Transaction Reference",
    "meta": {"nextStep": "Try and create the Transaction or Charge with a new reference"},
    "type": "validation_error",
    "code": "duplicate_reference",
    "errorCodeMappingNotFound": False,
}


def paystack_error(body: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(body)
