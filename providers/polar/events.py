"""Polar webhook events (``{"type", "timestamp", "data"}``) → :class:`NormalizedEvent`.

Works on the decoded JSON (not SDK objects), like the Stripe events, so an event stored
long ago is read the same way. The provider event id is the delivery's ``webhook-id``
(Standard Webhooks: the same on every retry of one event).

- ``order.paid``: the payment of a checkout succeeded. Our payment id is the checkout's
  (``checkout_id``); the amount compared with the attempt is ``net_amount`` (the price
  after any Polar discount, before the tax Polar adds as merchant of record), so a
  discount applied at Polar, a different price or currency is a mismatch kept for review.
- ``refund.created`` / ``refund.updated``: one refund with its id and status (our checkout
  id travels in the refund's metadata when Paymesh sent it; else the refund is matched by
  its id to the refund Paymesh recorded).
- ``order.refunded``: the order's running refunded total, with no refund id: applying it
  as a refund could count one twice (the ``refund.*`` event of the same refund carries the
  id), so it is stored for the record and ignored.
- ``checkout.updated``: ``failed`` fails the attempt; every other status is left to
  ``order.paid`` (a checkout's success is not proof of payment) or to the reservation
  expiry (``expired``).
"""

from __future__ import annotations

from typing import Any

from providers.base import EventType, MalformedWebhook, NormalizedEvent
from providers.transport import integer, iso_datetime

#: Metadata keys Paymesh writes on Polar checkouts and refunds.
KEY_FIELD = "paymesh_idempotency_key"
CHECKOUT_FIELD = "paymesh_checkout_id"
REASON_FIELD = "paymesh_reason"

_REFUND_EVENTS = frozenset({"refund.created", "refund.updated"})
_REFUND_STATES = {"succeeded": EventType.REFUND_SUCCEEDED, "failed": EventType.REFUND_FAILED,
                  "canceled": EventType.REFUND_FAILED}




def _currency(obj: dict[str, Any]) -> str | None:
    value = obj.get("currency")
    return value.upper() if isinstance(value, str) and value else None


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    value = obj.get("metadata")
    return value if isinstance(value, dict) else {}


def decode(event: Any) -> tuple[str, dict[str, Any]]:
    """``(type, data)`` of a decoded body, or :class:`MalformedWebhook`."""
    if not isinstance(event, dict) or not isinstance(event.get("type"), str) \
            or not isinstance(event.get("data"), dict):
        raise MalformedWebhook("polar webhook needs a type and a data object")
    return event["type"], event["data"]


def parse_event(event: dict[str, Any], webhook_id: str) -> NormalizedEvent:
    """One verified Polar event (decoded JSON) → one normalized event."""
    kind, data = decode(event)
    common: dict[str, Any] = {"provider_event_id": webhook_id,
                              "occurred_at": iso_datetime(event.get("timestamp"))}
    if kind == "order.paid":
        return _order_paid(data, common)
    if kind in _REFUND_EVENTS:
        return _refund(data, common)
    if kind == "checkout.updated" and data.get("status") == "failed":
        return NormalizedEvent(
            type=EventType.PAYMENT_FAILED, provider_payment_id=data.get("id"),
            amount=integer(data.get("net_amount")), currency=_currency(data),
            reference=_metadata(data).get("order_id"),
            data={"failure_code": "checkout_failed",
                  "failure_message": "the Polar checkout failed"}, **common)
    facts: dict[str, Any] = {"type": kind, "status": data.get("status"), "id": data.get("id")}
    if kind == "order.refunded":
        facts |= {"checkout_id": data.get("checkout_id"),
                  "refunded_amount": integer(data.get("refunded_amount"))}
    return NormalizedEvent(type=EventType.IGNORED, data=facts, **common)


def _order_paid(order: dict[str, Any], common: dict[str, Any]) -> NormalizedEvent:
    metadata = _metadata(order)
    currency = _currency(order)
    fee = integer(order.get("platform_fee_amount"))
    fee_currency = order.get("platform_fee_currency")
    if fee is not None and isinstance(fee_currency, str) and fee_currency.upper() != currency:
        fee = None  # a fee in another currency is not this payment's fee in minor units
    return NormalizedEvent(
        type=EventType.PAYMENT_SUCCEEDED,
        provider_payment_id=order.get("checkout_id"),
        amount=integer(order.get("net_amount")),
        currency=currency,
        reference=metadata.get("order_id"),
        fee_amount=fee,
        data={"polar_order_id": order.get("id"), "status": order.get("status"),
              "total_amount": integer(order.get("total_amount")),
              "tax_amount": integer(order.get("tax_amount")),
              "discount_amount": integer(order.get("discount_amount"))},
        **common,
    )


def _refund(refund: dict[str, Any], common: dict[str, Any]) -> NormalizedEvent:
    status = refund.get("status")
    metadata = _metadata(refund)
    return NormalizedEvent(
        type=_REFUND_STATES.get(status or "", EventType.IGNORED),  # pending: nothing final
        provider_payment_id=metadata.get(CHECKOUT_FIELD),
        provider_refund_id=refund.get("id"),
        amount=integer(refund.get("amount")),
        currency=_currency(refund),
        data={"status": status, "polar_order_id": refund.get("order_id"),
              "reason": metadata.get(REASON_FIELD) or refund.get("reason"),
              "idempotency_key": metadata.get(KEY_FIELD),
              "failure_code": f"refund_{status}" if status in ("failed", "canceled") else None},
        **common,
    )
