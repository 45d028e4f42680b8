"""``PaystackProvider``: hosted checkout via ``/transaction/initialize``, verify, refund.

Paystack has no idempotency header; its equivalent is the unique transaction
``reference``, so the reference is derived from our idempotency key (a retry is refused
as ``duplicate_reference`` instead of charging twice). Refunds are not deduplicated by
Paystack: the tenant's refund record (unique key + state) is the guard, and our key is
written into ``merchant_note`` for reconciliation. Webhooks carry no timestamp; the inbox
dedupes them by a provider event id derived from event name and object id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any
from urllib.parse import quote

from providers.base import (
    CreatePayment,
    CredentialCheck,
    EventType,
    InvalidProviderRequest,
    MalformedWebhook,
    NormalizedEvent,
    PaymentProvider,
    PaymentResult,
    PaymentState,
    RefundRequest,
    RefundResult,
    RefundState,
    WebhookRequest,
    WebhookVerificationError,
)
from providers.transport import (
    credential_check,
    decode_json,
    integer,
    iso_datetime,
    safe_reference,
    send,
    webhook_object,
)

API_BASE = "https://api.paystack.co"
SIGNATURE_HEADER = "x-paystack-signature"

_STATES = {
    "success": PaymentState.SUCCEEDED,
    "reversed": PaymentState.SUCCEEDED,  # paid, then refunded in full: refunds track that
    "failed": PaymentState.FAILED,
    "abandoned": PaymentState.PENDING,  # initialized, customer has not finished
}
_REFUND_STATES = {"processed": RefundState.SUCCEEDED, "failed": RefundState.FAILED}
#: ``merchant-accepted``: the merchant conceded and the customer is refunded.
#: ``auto-accepted``: no answer from the merchant before ``dueAt``, the customer is refunded.
_DISPUTE_OUTCOMES = {"merchant-accepted": "lost", "auto-accepted": "lost", "declined": "won"}


class PaystackRefused(InvalidProviderRequest):
    """A 4xx from Paystack, with Paystack's own error ``code`` kept for callers here."""

    def __init__(self, message: str, provider_code: str | None) -> None:
        super().__init__(message)
        self.provider_code = provider_code




def _metadata(value: Any) -> dict[str, Any]:
    """``metadata`` comes back as an object, a JSON string, or ``0``/``""`` when unset."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def _amount(value: Any) -> int | None:
    """Paystack sends amounts as integers, occasionally as digit strings."""
    return integer(value, digit_strings=True)


class PaystackProvider(PaymentProvider):
    code = "paystack"
    required_keys = ("secret_key",)

    @property
    def base_url(self) -> str:
        return (self.config.api_base_url or API_BASE).rstrip("/")

    async def _call(self, method: str, path: str, *, body: Any = None) -> dict[str, Any]:
        """``data`` of a successful answer; a refusal raises :class:`PaystackRefused`."""
        headers = {"Authorization": f"Bearer {self.config.secret_key or ''}"}
        response = await send(
            self.http, method, self.base_url + path, provider="paystack", headers=headers, json=body
        )
        answer = decode_json(response, provider="paystack")
        if not isinstance(answer, dict):
            raise InvalidProviderRequest("paystack answered with an unexpected shape")
        if response.status_code >= 400 or answer.get("status") is False:
            message = f"paystack: {answer.get('message') or response.status_code}"
            if response.status_code == 404:
                raise InvalidProviderRequest(message, code="payment_not_found")
            raise PaystackRefused(message, answer.get("code"))
        data = answer.get("data")
        return data if isinstance(data, dict) else {}

    # ------------------------------------------------------------ payments

    async def create_payment(self, request: CreatePayment) -> PaymentResult:
        if not request.customer_email:
            raise InvalidProviderRequest("paystack needs the customer's email address")
        reference = safe_reference(request.idempotency_key, max_length=100)
        body: dict[str, Any] = {
            "email": request.customer_email,
            "amount": request.amount,
            "currency": request.currency,
            "reference": reference,
            "metadata": {
                **request.metadata,
                "order_id": request.order_id,
                "order_number": request.order_number,
                "tenant": self.config.tenant,
            },
        }
        if request.return_url:
            body["callback_url"] = request.return_url
        try:
            data = await self._call("POST", "/transaction/initialize", body=body)
        except PaystackRefused as exc:
            if exc.provider_code != "duplicate_reference":
                raise
            # A retry of a create that reached Paystack: report that payment, never a new one.
            existing = await self.fetch_payment(reference)
            if existing.state is PaymentState.PENDING:
                raise InvalidProviderRequest(
                    "paystack already has this transaction; its checkout link is not "
                    "retrievable, start a new payment attempt",
                    code="duplicate_reference",
                ) from exc
            return existing
        return PaymentResult(
            provider_payment_id=data.get("reference") or reference,
            state=PaymentState.PENDING,
            amount=request.amount,
            currency=request.currency,
            redirect_url=data["authorization_url"],
            client_secret=data.get("access_code"),
        )

    async def fetch_payment(self, provider_payment_id: str) -> PaymentResult:
        data = await self._call("GET", f"/transaction/verify/{quote(provider_payment_id, safe='')}")
        state = _STATES.get(data.get("status", ""), PaymentState.PROCESSING)
        failed = state is PaymentState.FAILED
        return PaymentResult(
            provider_payment_id=data.get("reference") or provider_payment_id,
            state=state,
            amount=_amount(data.get("amount")) or 0,
            currency=str(data.get("currency", "")).upper(),
            fee_amount=_amount(data.get("fees")),
            failure_code="payment_failed" if failed else None,
            failure_message=data.get("gateway_response") if failed else None,
        )

    async def refund(self, request: RefundRequest) -> RefundResult:
        body = {
            "transaction": request.provider_payment_id,
            "amount": request.amount,
            "merchant_note": f"paymesh refund {request.idempotency_key}"[:200],
        }
        if request.reason:
            body["customer_note"] = request.reason[:200]
        data = await self._call("POST", "/refund", body=body)
        currency = str(data.get("currency") or request.currency).upper()
        return RefundResult(
            provider_refund_id=str(data["id"]) if data.get("id") is not None else None,
            state=_REFUND_STATES.get(data.get("status", ""), RefundState.PENDING),
            amount=_amount(data.get("amount")) or request.amount,
            currency=currency,
        )

    # ------------------------------------------------------------ webhooks

    def verify_webhook(self, request: WebhookRequest, *, now: datetime | None = None) -> None:
        """HMAC-SHA512 of the raw body keyed by the secret key (Paystack signs no timestamp)."""
        signature = request.headers.get(SIGNATURE_HEADER, "").strip().lower()
        if not signature:
            raise WebhookVerificationError(f"missing {SIGNATURE_HEADER} header")
        if not self.config.secret_key:
            raise WebhookVerificationError("paystack secret key is not configured")
        expected = hmac.new(
            self.config.secret_key.encode(), request.body, hashlib.sha512
        ).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise WebhookVerificationError("paystack signature does not match")
        self._decode(request.body)

    @staticmethod
    def _decode(body: bytes) -> dict[str, Any]:
        event = webhook_object(body, provider="paystack")
        if not isinstance(event.get("event"), str):
            raise MalformedWebhook("paystack webhook has no event name")
        if not isinstance(event.get("data"), dict):
            raise MalformedWebhook("paystack webhook has no data object")
        return event

    def parse_webhook(self, request: WebhookRequest) -> NormalizedEvent:
        event = self._decode(request.body)
        name: str = event["event"]
        data: dict[str, Any] = event["data"]
        ident = data.get("id")
        suffix = str(ident) if ident is not None else hashlib.sha256(request.body).hexdigest()[:32]
        event_id = f"{name}:{suffix}"
        currency = str(data["currency"]).upper() if data.get("currency") else None
        if name == "charge.success":
            return NormalizedEvent(
                provider_event_id=event_id,
                type=EventType.PAYMENT_SUCCEEDED,
                provider_payment_id=data.get("reference"),
                amount=_amount(data.get("amount")),
                currency=currency,
                reference=data.get("reference"),
                fee_amount=_amount(data.get("fees")),
                occurred_at=iso_datetime(data.get("paid_at") or data.get("paidAt")),
                data={
                    "order_id": _metadata(data.get("metadata")).get("order_id"),
                    "channel": data.get("channel"),
                    "gateway_response": data.get("gateway_response"),
                },
            )
        if name in ("refund.processed", "refund.failed"):
            return NormalizedEvent(
                provider_event_id=event_id,
                type=EventType.REFUND_SUCCEEDED
                if name == "refund.processed"
                else EventType.REFUND_FAILED,
                provider_payment_id=data.get("transaction_reference"),
                # Paystack's documented refund webhook carries no refund ``id`` (the id
                # ``POST /refund`` answered), only the processor's ``refund_reference``:
                # with no id, the refund is matched by payment and amount
                # (tenant.webhooks.money_events)
                provider_refund_id=str(ident) if ident is not None else None,
                amount=_amount(data.get("amount")),
                currency=currency,
                reference=data.get("transaction_reference"),
                data={"status": data.get("status"),
                      "refund_reference": data.get("refund_reference")},
            )
        if name in ("charge.dispute.create", "charge.dispute.resolve"):
            transaction = data.get("transaction")
            transaction = transaction if isinstance(transaction, dict) else {}
            closed = name == "charge.dispute.resolve"
            facts: dict[str, Any] = {
                "status": data.get("status"),
                "reason": data.get("category"),
                "refund_amount": _amount(data.get("refund_amount")),
                "evidence_due_by": data.get("dueAt"),
            }
            if closed:
                resolution = data.get("resolution")
                facts["resolution"] = resolution
                facts["outcome"] = _DISPUTE_OUTCOMES.get(resolution or "", resolution)
            return NormalizedEvent(
                provider_event_id=event_id,
                type=EventType.DISPUTE_CLOSED if closed else EventType.DISPUTE_OPENED,
                provider_payment_id=transaction.get("reference")
                or data.get("transaction_reference"),
                provider_dispute_id=str(ident) if ident is not None else None,
                amount=_amount(transaction.get("amount")),
                currency=currency or (str(transaction.get("currency", "")).upper() or None),
                reference=transaction.get("reference"),
                data=facts,
            )
        return NormalizedEvent(
            provider_event_id=event_id, type=EventType.IGNORED, data={"event": name}
        )

    def public_config(self) -> dict[str, Any]:
        return {"public_key": self.config.public_key} if self.config.public_key else {}

    async def test_credentials(self) -> CredentialCheck:
        return await credential_check(
            self._call("GET", "/balance"), ok_message="paystack accepted the secret key"
        )
