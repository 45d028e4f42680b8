"""``FlutterwaveProvider`` (API v3): hosted payment link, verify by reference, refund.

Flutterwave speaks *major* units ("12.50"), so amounts are converted exactly with
``Decimal`` both ways (:func:`core.money.to_major` / :func:`core.money.parse_major`):
responses are parsed with ``parse_float=Decimal`` and a value finer than the currency's
minor unit is refused rather than rounded. Our ``provider_payment_id`` is the ``tx_ref``
we choose (derived from the idempotency key); Flutterwave's numeric transaction id is
known only after payment, so refunds look it up first.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from core.errors import ValidationError
from core.money import parse_major, to_major
from providers.base import (
    CreatePayment,
    CredentialCheck,
    EventType,
    InvalidProviderRequest,
    NormalizedEvent,
    PaymentProvider,
    PaymentResult,
    PaymentState,
    ProviderUnavailable,
    RefundRequest,
    RefundResult,
    RefundState,
    WebhookRequest,
    WebhookVerificationError,
)
from providers.flutterwave.webhooks import decode_event
from providers.transport import (
    constant_time_equal,
    credential_check,
    decode_json,
    iso_datetime,
    safe_reference,
    send,
)

API_BASE = "https://api.flutterwave.com/v3"
HASH_HEADER = "verif-hash"
SIGNATURE_HEADER = "flutterwave-signature"

_STATES = {
    "successful": PaymentState.SUCCEEDED,
    "failed": PaymentState.FAILED,
    "cancelled": PaymentState.CANCELLED,
    "pending": PaymentState.PROCESSING,
}
_REFUND_STATES = {
    "completed": RefundState.SUCCEEDED,
    "successful": RefundState.SUCCEEDED,
    "failed": RefundState.FAILED,
}


def major_string(amount: int, currency: str) -> str:
    """Minor units → the exact major-unit string Flutterwave expects (``1050`` → ``"10.50"``)."""
    return format(to_major(amount, currency), "f")


def minor_units(value: Any, currency: str) -> int | None:
    """A major-unit amount from Flutterwave (int, ``Decimal`` or string) → minor units."""
    if value is None or isinstance(value, bool | float):
        return None  # floats never reach here: JSON is parsed with Decimal
    try:
        return parse_major(str(Decimal(str(value))), currency)
    except (ArithmeticError, ValueError, ValidationError):
        return None


class FlutterwaveProvider(PaymentProvider):
    code = "flutterwave"
    required_keys = ("secret_key", "webhook_secret")

    @property
    def base_url(self) -> str:
        return (self.config.api_base_url or API_BASE).rstrip("/")

    async def _call(
        self, method: str, path: str, *, body: Any = None, not_found_ok: bool = False
    ) -> dict[str, Any] | None:
        headers = {"Authorization": f"Bearer {self.config.secret_key or ''}"}
        response = await send(
            self.http,
            method,
            self.base_url + path,
            provider="flutterwave",
            headers=headers,
            json=body,
        )
        answer = decode_json(response, provider="flutterwave")
        if not isinstance(answer, dict):
            raise ProviderUnavailable("flutterwave answered with an unexpected shape")
        if response.status_code >= 400 or answer.get("status") != "success":
            message = str(answer.get("message") or response.status_code)
            if "no transaction was found" in message.lower() or response.status_code == 404:
                if not_found_ok:
                    return None
                raise InvalidProviderRequest(f"flutterwave: {message}", code="payment_not_found")
            raise InvalidProviderRequest(f"flutterwave: {message}")
        data = answer.get("data")
        return data if isinstance(data, dict) else {}

    # ------------------------------------------------------------ payments

    async def create_payment(self, request: CreatePayment) -> PaymentResult:
        if not request.customer_email:
            raise InvalidProviderRequest("flutterwave needs the customer's email address")
        if not request.return_url:
            raise InvalidProviderRequest("flutterwave needs a return URL (redirect_url)")
        tx_ref = safe_reference(request.idempotency_key, max_length=100)
        body = {
            "tx_ref": tx_ref,
            "amount": major_string(request.amount, request.currency),
            "currency": request.currency,
            "redirect_url": request.return_url,
            "customer": {"email": request.customer_email},
            "customizations": {
                "title": request.order_number,
                "description": request.description or request.order_number,
            },
            "meta": {
                **request.metadata,
                "order_id": request.order_id,
                "order_number": request.order_number,
                "tenant": self.config.tenant,
            },
        }
        data = await self._call("POST", "/payments", body=body) or {}
        link = data.get("link")
        if not isinstance(link, str):
            raise ProviderUnavailable("flutterwave did not return a payment link")
        return PaymentResult(
            provider_payment_id=tx_ref,
            state=PaymentState.PENDING,
            amount=request.amount,
            currency=request.currency,
            redirect_url=link,
        )

    async def _transaction(self, tx_ref: str) -> dict[str, Any] | None:
        return await self._call(
            "GET",
            f"/transactions/verify_by_reference?tx_ref={quote(tx_ref, safe='')}",
            not_found_ok=True,
        )

    async def fetch_payment(self, provider_payment_id: str) -> PaymentResult:
        data = await self._transaction(provider_payment_id)
        if data is None:
            raise InvalidProviderRequest(
                "flutterwave has no transaction for this reference yet", code="payment_not_found"
            )
        currency = str(data.get("currency", "")).upper()
        state = _STATES.get(str(data.get("status", "")).lower(), PaymentState.PROCESSING)
        failed = state is PaymentState.FAILED
        return PaymentResult(
            provider_payment_id=data.get("tx_ref") or provider_payment_id,
            state=state,
            amount=minor_units(data.get("amount"), currency) or 0,
            currency=currency,
            fee_amount=minor_units(data.get("app_fee"), currency),
            failure_code="payment_failed" if failed else None,
            failure_message=data.get("processor_response") if failed else None,
        )

    async def refund(self, request: RefundRequest) -> RefundResult:
        transaction = await self._transaction(request.provider_payment_id)
        if transaction is None or transaction.get("id") is None:
            raise InvalidProviderRequest("flutterwave: nothing was paid on this reference")
        if str(transaction.get("status", "")).lower() != "successful":
            raise InvalidProviderRequest("flutterwave: only a successful payment can be refunded")
        if str(transaction.get("currency", "")).upper() != request.currency.upper():
            raise InvalidProviderRequest("flutterwave: refund currency differs from the payment's")
        body: dict[str, Any] = {"amount": major_string(request.amount, request.currency)}
        if request.reason:
            body["comments"] = request.reason[:200]
        data = (
            await self._call("POST", f"/transactions/{transaction['id']}/refund", body=body) or {}
        )
        refunded = minor_units(data.get("amount_refunded"), request.currency)
        return RefundResult(
            provider_refund_id=str(data["id"]) if data.get("id") is not None else None,
            state=_REFUND_STATES.get(str(data.get("status", "")).lower(), RefundState.PENDING),
            amount=refunded if refunded is not None else request.amount,
            currency=request.currency,
        )

    # ------------------------------------------------------------ webhooks

    def verify_webhook(self, request: WebhookRequest, *, now: datetime | None = None) -> None:
        """``verif-hash`` equal to the secret hash, or ``flutterwave-signature`` =
        base64 HMAC-SHA256 of the raw body keyed by it. Neither carries a timestamp."""
        secret = self.config.webhook_secret
        if not secret:
            raise WebhookVerificationError("flutterwave secret hash is not configured")
        signature = request.headers.get(SIGNATURE_HEADER)
        verif_hash = request.headers.get(HASH_HEADER)
        if signature:
            digest = hmac.new(secret.encode(), request.body, hashlib.sha256).digest()
            ok = constant_time_equal(base64.b64encode(digest), signature.strip())
        elif verif_hash:
            ok = constant_time_equal(secret, verif_hash)
        else:
            raise WebhookVerificationError(f"missing {HASH_HEADER} / {SIGNATURE_HEADER} header")
        if not ok:
            raise WebhookVerificationError("flutterwave webhook secret does not match")
        decode_event(request.body)

    def parse_webhook(self, request: WebhookRequest) -> NormalizedEvent:
        name, data, event_id = decode_event(request.body)
        status = str(data.get("status", "")).lower()
        if name == "refund.completed" and status in ("completed", "failed"):
            # v3's refund webhook: the refund's ``id`` (what ``POST
            # /transactions/{id}/refund`` answered), ``AmountRefunded`` in major units, the
            # numeric ``TransactionId`` but neither ``tx_ref`` nor currency: the refund is
            # matched by its id (tenant.webhooks.handlers.money_event)
            return NormalizedEvent(
                provider_event_id=event_id,
                type=EventType.REFUND_SUCCEEDED if status == "completed"
                else EventType.REFUND_FAILED,
                provider_refund_id=str(data["id"]) if data.get("id") is not None else None,
                data={
                    "status": status,
                    "amount_refunded_major": str(data.get("AmountRefunded")),
                    "transaction_id": data.get("TransactionId"),
                    "flw_ref": data.get("FlwRef"),
                    "failure_message": data.get("comments") if status == "failed" else None,
                },
            )
        if name != "charge.completed" or status not in ("successful", "failed"):
            return NormalizedEvent(
                provider_event_id=event_id,
                type=EventType.IGNORED,
                data={"event": name, "status": status},
            )
        currency = str(data.get("currency", "")).upper() or None
        succeeded = status == "successful"
        return NormalizedEvent(
            provider_event_id=event_id,
            type=EventType.PAYMENT_SUCCEEDED if succeeded else EventType.PAYMENT_FAILED,
            provider_payment_id=data.get("tx_ref"),
            amount=minor_units(data.get("amount"), currency) if currency else None,
            currency=currency,
            reference=data.get("tx_ref"),
            fee_amount=minor_units(data.get("app_fee"), currency) if currency else None,
            occurred_at=iso_datetime(data.get("created_at")),
            data={
                "transaction_id": data.get("id"),
                "flw_ref": data.get("flw_ref"),
                "processor_response": data.get("processor_response"),
                "charged_amount": minor_units(data.get("charged_amount"), currency)
                if currency
                else None,
            },
        )

    def public_config(self) -> dict[str, Any]:
        return {"public_key": self.config.public_key} if self.config.public_key else {}

    async def test_credentials(self) -> CredentialCheck:
        return await credential_check(
            self._call("GET", "/balances"), ok_message="flutterwave accepted the secret key"
        )

