"""The sandbox gateway's own records and wire shapes.

The gateway plays an external system, so these are *its* objects (stored as JSON in
Redis, shown on its API), not Paymesh's: a tenant sees them only through
:class:`providers.sandbox.provider.SandboxProvider`, which maps them to neutral types.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

from core.money import exponent, to_major


class PaymentStatus(StrEnum):
    REQUIRES_PAYMENT = "requires_payment"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class DisputeStatus(StrEnum):
    NEEDS_RESPONSE = "needs_response"
    WON = "won"
    LOST = "lost"


class EventKind(StrEnum):
    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_FAILED = "payment.failed"
    REFUND_SUCCEEDED = "refund.succeeded"
    DISPUTE_CREATED = "dispute.created"
    DISPUTE_CLOSED = "dispute.closed"


class GatewayError(Exception):
    """A refusal by the gateway; rendered as ``{"error": {...}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, *, param: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param


def new_id(prefix: str) -> str:
    """Unguessable ids: the checkout page URL is the only secret a customer holds."""
    return f"{prefix}_{secrets.token_hex(12)}"


# ------------------------------------------------------------------ request bodies


class PaymentBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    amount: int
    currency: str
    reference: str | None = None
    order_number: str | None = None
    description: str | None = None
    customer_email: str | None = None
    return_url: str | None = None
    cancel_url: str | None = None
    notify_url: str | None = None
    metadata: dict[str, str] = {}
    #: The signing secret of ``notify_url``'s endpoint when the merchant set their own
    #: (else one derived from the secret key, see ``signing.webhook_secret_for``).
    webhook_secret: str | None = None


class RefundBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    payment_id: str
    amount: int | None = None  # None: everything still refundable
    currency: str | None = None  # when given, must be the payment's
    reason: str | None = None


class DisputeBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    outcome: DisputeStatus | None = None
    reason: str = "fraudulent"


# ------------------------------------------------------------------ stored records


class Dispute(msgspec.Struct, kw_only=True):
    id: str
    amount: int
    currency: str
    reason: str
    status: DisputeStatus
    created: int
    closed_at: int | None = None
    #: When the merchant's evidence is due (unix seconds).
    evidence_due_by: int | None = None


class Payment(msgspec.Struct, kw_only=True):
    id: str
    account: str
    amount: int
    currency: str
    status: PaymentStatus
    created: int
    request_hash: str
    reference: str | None = None
    order_number: str | None = None
    description: str | None = None
    customer_email: str | None = None
    return_url: str | None = None
    cancel_url: str | None = None
    notify_url: str | None = None
    metadata: dict[str, str] = {}
    fee: int = 0
    card_last4: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    paid_at: int | None = None
    amount_refunded: int = 0
    refund_ids: list[str] = []
    disputes: list[Dispute] = []

    @property
    def open_dispute(self) -> Dispute | None:
        return next((d for d in self.disputes if d.status is DisputeStatus.NEEDS_RESPONSE), None)

    @property
    def refundable(self) -> int:
        """Captured minus refunded minus what lost disputes already took back."""
        if self.status is not PaymentStatus.SUCCEEDED:
            return 0
        lost = sum(d.amount for d in self.disputes if d.status is DisputeStatus.LOST)
        return max(self.amount - self.amount_refunded - lost, 0)


class Refund(msgspec.Struct, kw_only=True):
    id: str
    account: str
    payment_id: str
    amount: int
    currency: str
    created: int
    request_hash: str
    status: str = "pending"  # the API's answer; its webhook carries ``succeeded``
    reason: str | None = None


class Delivery(msgspec.Struct, kw_only=True):
    """One webhook to send: the exact body and where to, signed at send time."""

    id: str
    event_id: str
    event_type: EventKind
    url: str
    body: str
    secret: str
    created: int
    attempts: int = 0
    delivered_at: int | None = None
    last_error: str | None = None


# ------------------------------------------------------------------ public views


def format_amount(amount: int, currency: str) -> str:
    """``123456, "USD"`` → ``"1,234.56 USD"``; exact (Decimal), digits per ISO-4217."""
    return f"{to_major(amount, currency):,.{exponent(currency)}f} {currency}"


def dispute_view(dispute: Dispute, payment: Payment) -> dict[str, Any]:
    return {
        "id": dispute.id,
        "object": "dispute",
        "payment_id": payment.id,
        "reference": payment.reference,
        "amount": dispute.amount,
        "currency": dispute.currency,
        "reason": dispute.reason,
        "status": dispute.status.value,
        "created": dispute.created,
        "closed_at": dispute.closed_at,
        "evidence_due_by": dispute.evidence_due_by,
    }


def payment_view(payment: Payment, public_url: str) -> dict[str, Any]:
    latest = payment.disputes[-1] if payment.disputes else None
    return {
        "id": payment.id,
        "object": "payment",
        "amount": payment.amount,
        "currency": payment.currency,
        "status": payment.status.value,
        "reference": payment.reference,
        "order_number": payment.order_number,
        "description": payment.description,
        "customer_email": payment.customer_email,
        "metadata": payment.metadata,
        "fee": payment.fee,
        "amount_refunded": payment.amount_refunded,
        "card_last4": payment.card_last4,
        "failure_code": payment.failure_code,
        "failure_message": payment.failure_message,
        "checkout_url": f"{public_url}/sandbox/checkout/{payment.id}",
        "dispute": dispute_view(latest, payment) if latest else None,
        "created": payment.created,
        "paid_at": payment.paid_at,
    }


def refund_view(refund: Refund, payment: Payment) -> dict[str, Any]:
    return {
        "id": refund.id,
        "object": "refund",
        "payment_id": refund.payment_id,
        "reference": payment.reference,
        "amount": refund.amount,
        "currency": refund.currency,
        "status": refund.status,
        "reason": refund.reason,
        "created": refund.created,
    }


def result_url(payment: Payment) -> str | None:
    """Where the customer goes after a result: return/cancel URL + ``payment_id``, ``status``."""
    base = payment.cancel_url if payment.status is PaymentStatus.CANCELLED else None
    base = base or payment.return_url
    if not base:
        return None
    parts = urlsplit(base)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [("payment_id", payment.id), ("status", payment.status.value)]
    return urlunsplit(parts._replace(query=urlencode(query)))
