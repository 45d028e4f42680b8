"""``StripeProvider``: PaymentIntents, refunds and webhooks through the official SDK.

The ``stripe`` package is imported here and nowhere outside ``providers/``. One
``stripe.HTTPXClient`` is shared per event loop (building one loads a CA bundle, and its
httpx pool must not cross loops, as in workers that run ``asyncio.run`` per message).
Stripe dedupes creates by ``Idempotency-Key`` for 24 h; refunds are additionally
deduped by our key in refund metadata and checked against what is left to refund, because
Stripe-compatible test servers (localstripe) honour neither.
"""

from __future__ import annotations

import asyncio
import weakref
from datetime import UTC, datetime
from typing import Any

import stripe

from core import jsonbody
from providers.base import (
    BadCredentials,
    CreatePayment,
    CredentialCheck,
    InsufficientFunds,
    InvalidProviderRequest,
    MalformedWebhook,
    NormalizedEvent,
    PaymentDeclined,
    PaymentProvider,
    PaymentResult,
    PaymentState,
    ProviderError,
    ProviderUnavailable,
    RefundRequest,
    RefundResult,
    RefundState,
    StaleWebhook,
    WebhookRequest,
    WebhookVerificationError,
)
from providers.stripe.amounts import from_stripe, to_stripe
from providers.stripe.events import parse_event
from providers.transport import credential_check

TOLERANCE_SECONDS = 300
TIMEOUT_SECONDS = 20.0
#: Stripe's own refund reasons; free text goes to metadata instead.
_REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})
_METADATA_VALUE_MAX = 500

_http_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, stripe.HTTPXClient] = (
    weakref.WeakKeyDictionary()
)


def _http_client() -> stripe.HTTPXClient:
    loop = asyncio.get_running_loop()
    client = _http_clients.get(loop)
    if client is None:
        client = _http_clients[loop] = stripe.HTTPXClient(timeout=TIMEOUT_SECONDS)
    return client


async def close_http_client() -> None:
    """Close this event loop's shared Stripe HTTP client (call on app/worker shutdown)."""
    client = _http_clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.close_async()


def map_stripe_error(exc: stripe.StripeError) -> ProviderError:
    """One SDK error → the provider error tree (raised ``from`` the SDK error by callers)."""
    message = exc.user_message or str(exc) or type(exc).__name__
    if isinstance(exc, stripe.CardError):
        error = exc.error
        decline = (error.decline_code if error else None) or exc.code or "card_declined"
        if decline == "insufficient_funds":
            return InsufficientFunds(message)
        return PaymentDeclined(message, code=decline)
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return BadCredentials(message)
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError):
        return ProviderUnavailable(f"stripe: {message}")
    if isinstance(exc, stripe.APIError) or (exc.http_status or 0) >= 500:
        return ProviderUnavailable(f"stripe: {message}")
    if isinstance(exc, stripe.IdempotencyError):
        return InvalidProviderRequest(message, code="idempotency_key_reused")
    return InvalidProviderRequest(f"stripe: {message}")


def _state(pi: dict[str, Any]) -> PaymentState:
    status = pi.get("status")
    if status == "requires_payment_method":
        return PaymentState.FAILED if pi.get("last_payment_error") else PaymentState.PENDING
    return {
        "requires_confirmation": PaymentState.PENDING,
        "requires_action": PaymentState.REQUIRES_ACTION,
        "processing": PaymentState.PROCESSING,
        "requires_capture": PaymentState.PROCESSING,
        "succeeded": PaymentState.SUCCEEDED,
        "canceled": PaymentState.CANCELLED,
    }.get(status or "", PaymentState.PROCESSING)


def _signed_timestamp(header: str) -> int:
    """``t=`` of a ``Stripe-Signature`` header the SDK has already accepted."""
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            return int(value)
    raise MalformedWebhook("Stripe-Signature has no timestamp")


class StripeProvider(PaymentProvider):
    code = "stripe"
    required_keys = ("secret_key", "public_key", "webhook_secret")

    _client: stripe.StripeClient | None = None

    @property
    def client(self) -> stripe.StripeClient:
        """Built lazily, inside the running loop that owns the shared HTTP client."""
        if self._client is None:
            options: dict[str, Any] = {"http_client": _http_client()}
            if self.config.api_base_url:
                options["base_addresses"] = {"api": self.config.api_base_url.rstrip("/")}
            self._client = stripe.StripeClient(self.config.secret_key or "", **options)
        return self._client

    async def _call(self, method: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Await one SDK coroutine; return plain dicts, raise provider errors."""
        try:
            result = await method(*args, **kwargs)
        except stripe.StripeError as exc:
            raise map_stripe_error(exc) from exc
        return result.to_dict()

    # ------------------------------------------------------------ payments

    async def create_payment(self, request: CreatePayment) -> PaymentResult:
        metadata = {
            **request.metadata,
            "order_id": request.order_id,
            "order_number": request.order_number,
            "tenant": self.config.tenant,
        }
        if request.description:
            metadata["description"] = request.description[:_METADATA_VALUE_MAX]
        params: dict[str, Any] = {
            "amount": to_stripe(request.amount, request.currency),
            "currency": request.currency.lower(),
            "metadata": metadata,
        }
        if methods := self.config.config.get("payment_method_types"):
            params["payment_method_types"] = list(methods)
        # Connect: only when asked, since Stripe-compatible fakes reject these fields.
        if request.application_fee_amount is not None:
            params["application_fee_amount"] = to_stripe(
                request.application_fee_amount, request.currency
            )
        if request.destination_account:
            params["transfer_data"] = {"destination": request.destination_account}
        pi = await self._call(
            self.client.v1.payment_intents.create_async,
            params,
            {"idempotency_key": request.idempotency_key},
        )
        return self._result(pi)

    async def fetch_payment(self, provider_payment_id: str) -> PaymentResult:
        pi = await self._call(
            self.client.v1.payment_intents.retrieve_async,
            provider_payment_id,
            {"expand": ["latest_charge.balance_transaction"]},
        )
        return self._result(pi)

    def _result(self, pi: dict[str, Any]) -> PaymentResult:
        currency = pi["currency"].upper()
        error = pi.get("last_payment_error") or {}
        state = _state(pi)
        charge = pi.get("latest_charge")
        fee = None
        if isinstance(charge, dict) and isinstance(charge.get("balance_transaction"), dict):
            raw_fee = charge["balance_transaction"].get("fee")
            fee = from_stripe(raw_fee, currency) if isinstance(raw_fee, int) else None
        return PaymentResult(
            provider_payment_id=pi["id"],
            state=state,
            amount=from_stripe(pi["amount"], currency),
            currency=currency,
            client_secret=pi.get("client_secret"),
            fee_amount=fee,
            failure_code=(error.get("decline_code") or error.get("code")) if error else None,
            failure_message=error.get("message") if error else None,
        )

    # ------------------------------------------------------------ refunds

    async def refund(self, request: RefundRequest) -> RefundResult:
        refunds = await self._call(
            self.client.v1.refunds.list_async,
            {"payment_intent": request.provider_payment_id, "limit": 100},
        )
        for existing in refunds.get("data", []):
            if (existing.get("metadata") or {}).get(
                "paymesh_idempotency_key"
            ) == request.idempotency_key:
                return self._refund_result(existing)
        await self._ensure_refundable(request)
        params: dict[str, Any] = {
            "payment_intent": request.provider_payment_id,
            "amount": to_stripe(request.amount, request.currency),
            "metadata": {"paymesh_idempotency_key": request.idempotency_key},
        }
        if request.reason in _REFUND_REASONS:
            params["reason"] = request.reason
        elif request.reason:
            params["metadata"]["reason"] = request.reason[:_METADATA_VALUE_MAX]
        refund = await self._call(
            self.client.v1.refunds.create_async,
            params,
            {"idempotency_key": request.idempotency_key},
        )
        return self._refund_result(refund)

    async def _ensure_refundable(self, request: RefundRequest) -> None:
        """Refuse what Stripe would refuse: not captured, wrong currency, more than is left."""
        pi = await self._call(
            self.client.v1.payment_intents.retrieve_async,
            request.provider_payment_id,
            {"expand": ["latest_charge"]},
        )
        if pi.get("status") != "succeeded":
            raise InvalidProviderRequest("stripe: only a succeeded payment can be refunded")
        if pi["currency"].upper() != request.currency.upper():
            raise InvalidProviderRequest("stripe: refund currency differs from the payment's")
        charge = pi.get("latest_charge")
        if isinstance(charge, str):
            charge = await self._call(self.client.v1.charges.retrieve_async, charge)
        charge = charge or {}
        captured = charge.get("amount_captured")
        if captured is None:
            captured = charge.get("amount", 0) if charge.get("captured", True) else 0
        left = captured - charge.get("amount_refunded", 0)
        wanted = to_stripe(request.amount, request.currency)
        if wanted <= 0 or wanted > left:
            raise InvalidProviderRequest(
                f"stripe: refund of {request.amount} exceeds the "
                f"{from_stripe(max(left, 0), request.currency)} left to refund"
            )

    @staticmethod
    def _refund_result(refund: dict[str, Any]) -> RefundResult:
        status = refund.get("status")
        state = {
            "succeeded": RefundState.SUCCEEDED,
            "failed": RefundState.FAILED,
            "canceled": RefundState.FAILED,
        }.get(status or "", RefundState.PENDING)
        currency = refund["currency"].upper()
        return RefundResult(
            provider_refund_id=refund["id"],
            state=state,
            amount=from_stripe(refund["amount"], currency),
            currency=currency,
        )

    # ------------------------------------------------------------ webhooks

    def verify_webhook(self, request: WebhookRequest, *, now: datetime | None = None) -> None:
        """``stripe.Webhook.construct_event`` checks the signature; we check freshness.

        The SDK's own tolerance check reads the wall clock and cannot tell stale from
        forged, so it runs with ``tolerance=None`` and the window is applied here.
        """
        header = request.headers.get("stripe-signature")
        if not self.config.webhook_secret:
            raise WebhookVerificationError("stripe webhook secret is not configured")
        try:
            stripe.Webhook.construct_event(
                request.body,
                header,
                self.config.webhook_secret,
                tolerance=None,
                api_key=self.config.secret_key,
            )
        except stripe.SignatureVerificationError as exc:
            raise WebhookVerificationError(f"stripe signature: {exc.user_message or exc}") from exc
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            # Signed, but not an event object (a JSON array, a bare string, bad UTF-8…).
            raise MalformedWebhook("stripe webhook body is not a JSON event") from exc
        timestamp = _signed_timestamp(header or "")
        current = (now or datetime.now(UTC)).timestamp()
        if abs(current - timestamp) > TOLERANCE_SECONDS:
            raise StaleWebhook("stripe signature timestamp is outside the tolerance window")
        self._decode(request.body)

    @staticmethod
    def _decode(body: bytes) -> dict[str, Any]:
        try:
            event = jsonbody.loads(body)
            if not isinstance(event, dict):
                raise TypeError("not an object")
            if not isinstance(event["id"], str) or not isinstance(event["type"], str):
                raise TypeError("id and type must be strings")
            if not isinstance(event["created"], int) or not isinstance(
                event["data"]["object"], dict
            ):
                raise TypeError("created and data.object are required")
        except (ValueError, TypeError, KeyError) as exc:
            raise MalformedWebhook(f"not a stripe event: {exc}") from exc
        return event

    def parse_webhook(self, request: WebhookRequest) -> NormalizedEvent:
        return parse_event(self._decode(request.body))

    # ------------------------------------------------------------ misc

    def public_config(self) -> dict[str, Any]:
        return {"publishable_key": self.config.public_key} if self.config.public_key else {}

    async def test_credentials(self) -> CredentialCheck:
        return await credential_check(
            self._call(self.client.v1.balance.retrieve_async),
            ok_message="stripe accepted the secret key",
        )
