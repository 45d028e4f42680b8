"""Stripe webhook events → :class:`NormalizedEvent`.

Works on the plain JSON dict (not SDK objects), so the worker can re-parse a stored event
long after its signature timestamp expired, and tests can feed Stripe's documented
fixtures. Refund facts arrive in three shapes (``charge.refunded`` with the charge,
``refund.*``/``charge.refund.updated`` with the refund); all become ``refund.*`` events
carrying the refund id when Stripe gives one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from providers.base import EventType, NormalizedEvent
from providers.stripe.amounts import from_stripe

_PAYMENT_INTENT_EVENTS = {
    "payment_intent.succeeded": EventType.PAYMENT_SUCCEEDED,
    "payment_intent.payment_failed": EventType.PAYMENT_FAILED,
}
_REFUND_OBJECT_EVENTS = frozenset(
    {"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"}
)
_DISPUTE_EVENTS = {
    "charge.dispute.created": EventType.DISPUTE_OPENED,
    "charge.dispute.closed": EventType.DISPUTE_CLOSED,
}
#: ``warning_closed``: an inquiry closed without a chargeback — no money was lost.
_DISPUTE_OUTCOMES = {"won": "won", "warning_closed": "won", "lost": "lost"}


def _id(value: Any) -> str | None:
    """An expandable field: Stripe sends either the id or the embedded object."""
    if isinstance(value, dict):
        return value.get("id")
    return value if isinstance(value, str) else None


def _money(obj: dict[str, Any], field: str = "amount") -> tuple[int | None, str | None]:
    currency = obj.get("currency")
    amount = obj.get(field)
    if not isinstance(currency, str) or not isinstance(amount, int):
        return None, currency.upper() if isinstance(currency, str) else None
    return from_stripe(amount, currency), currency.upper()


def parse_event(event: dict[str, Any]) -> NormalizedEvent:
    """One verified Stripe event (decoded JSON) → one normalized event."""
    kind: str = event["type"]
    obj: dict[str, Any] = event["data"]["object"]
    common: dict[str, Any] = {
        "provider_event_id": event["id"],
        "occurred_at": datetime.fromtimestamp(event["created"], UTC),
        "provider_account_id": event.get("account"),
    }
    if kind in _PAYMENT_INTENT_EVENTS:
        return _payment_intent(_PAYMENT_INTENT_EVENTS[kind], obj, common)
    if kind == "charge.refunded":
        return _charge_refunded(obj, common)
    if kind in _REFUND_OBJECT_EVENTS:
        return _refund(obj, common)
    if kind in _DISPUTE_EVENTS:
        return _dispute(_DISPUTE_EVENTS[kind], obj, common)
    if kind == "account.updated":
        return _account(obj, common)
    return NormalizedEvent(type=EventType.IGNORED, data={"type": kind}, **common)


def _payment_intent(kind: EventType, pi: dict[str, Any], common: dict[str, Any]) -> NormalizedEvent:
    received = pi.get("amount_received")
    field = "amount_received" if kind is EventType.PAYMENT_SUCCEEDED and received else "amount"
    amount, currency = _money(pi, field)
    metadata = pi.get("metadata") or {}
    data: dict[str, Any] = {"charge": _id(pi.get("latest_charge"))}
    error = pi.get("last_payment_error") or {}
    if kind is EventType.PAYMENT_FAILED:
        data["failure_code"] = error.get("decline_code") or error.get("code")
        data["failure_message"] = error.get("message")
    if pi.get("application_fee_amount") is not None and currency:
        data["application_fee_amount"] = from_stripe(pi["application_fee_amount"], currency)
    if destination := _id((pi.get("transfer_data") or {}).get("destination")):
        data["destination_account"] = destination
    return NormalizedEvent(
        type=kind,
        provider_payment_id=pi.get("id"),
        amount=amount,
        currency=currency,
        reference=metadata.get("order_id"),
        data=data,
        **common,
    )


def _charge_refunded(charge: dict[str, Any], common: dict[str, Any]) -> NormalizedEvent:
    refunds = ((charge.get("refunds") or {}).get("data")) or []
    latest = max(refunds, key=lambda r: r.get("created", 0)) if refunds else None
    total, currency = _money(charge, "amount_refunded")
    amount = _money(latest)[0] if latest else None
    return NormalizedEvent(
        type=EventType.REFUND_SUCCEEDED,
        provider_payment_id=_id(charge.get("payment_intent")),
        provider_refund_id=latest.get("id") if latest else None,
        amount=amount,
        currency=currency,
        reference=(charge.get("metadata") or {}).get("order_id"),
        data={
            "charge": charge.get("id"),
            "amount_refunded_total": total,
            "fully_refunded": bool(charge.get("refunded")),
        },
        **common,
    )


def _refund(refund: dict[str, Any], common: dict[str, Any]) -> NormalizedEvent:
    status = refund.get("status")
    if status == "succeeded":
        kind = EventType.REFUND_SUCCEEDED
    elif status in ("failed", "canceled"):
        kind = EventType.REFUND_FAILED
    else:  # pending / requires_action: nothing final yet
        kind = EventType.IGNORED
    amount, currency = _money(refund)
    metadata = refund.get("metadata") or {}
    return NormalizedEvent(
        type=kind,
        provider_payment_id=_id(refund.get("payment_intent")),
        provider_refund_id=refund.get("id"),
        amount=amount,
        currency=currency,
        data={
            "status": status,
            "charge": _id(refund.get("charge")),
            "failure_reason": refund.get("failure_reason"),
            "idempotency_key": metadata.get("paymesh_idempotency_key"),
        },
        **common,
    )


def _dispute_fee(dispute: dict[str, Any]) -> int | None:
    """What the dispute cost in fees: the ``fee`` of its balance transactions, added up
    (charged at opening, given back on some wins); None when nothing is left charged."""
    fees = [bt.get("fee") for bt in dispute.get("balance_transactions") or []
            if isinstance(bt, dict)]
    total = sum(f for f in fees if isinstance(f, int) and not isinstance(f, bool))
    return total if total > 0 else None


def _dispute(kind: EventType, dispute: dict[str, Any], common: dict[str, Any]) -> NormalizedEvent:
    amount, currency = _money(dispute)
    status = dispute.get("status")
    data: dict[str, Any] = {
        "status": status,
        "reason": dispute.get("reason"),
        "charge": _id(dispute.get("charge")),
        "evidence_due_by": (dispute.get("evidence_details") or {}).get("due_by"),
    }
    fee = None
    if kind is EventType.DISPUTE_CLOSED:
        data["outcome"] = _DISPUTE_OUTCOMES.get(status or "", status)
        fee = _dispute_fee(dispute)
    return NormalizedEvent(
        type=kind,
        provider_payment_id=_id(dispute.get("payment_intent")),
        provider_dispute_id=dispute.get("id"),
        amount=amount,
        currency=currency,
        fee_amount=fee,
        data=data,
        **common,
    )


def _account(account: dict[str, Any], common: dict[str, Any]) -> NormalizedEvent:
    requirements = account.get("requirements") or {}
    common = {**common, "provider_account_id": account.get("id") or common["provider_account_id"]}
    return NormalizedEvent(
        type=EventType.ACCOUNT_UPDATED,
        data={
            "charges_enabled": bool(account.get("charges_enabled")),
            "payouts_enabled": bool(account.get("payouts_enabled")),
            "details_submitted": bool(account.get("details_submitted")),
            "currently_due": list(requirements.get("currently_due") or []),
            "disabled_reason": requirements.get("disabled_reason"),
        },
        **common,
    )
