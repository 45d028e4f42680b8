"""``PolarProvider``: hosted checkouts, orders, refunds and discounts through ``polar-sdk``.

The SDK (``polar``, API version 2026-10) is imported here and nowhere else. It is pointed
at the catalog's API base for the tenant's environment (its ``base_url`` option), so the
owner can aim Polar at a regional endpoint or a test double without a code change.

Polar takes no idempotency key. Our deterministic key goes into the metadata of what we
create (checkouts, refunds), and before creating anything the provider looks for an
object carrying that key, so a retry finds the first one instead of making a second: the
application-level reconciliation the SDK's guide asks for. The price is an ad-hoc fixed
price for the configured product equal to the order total Paymesh passes (already
discounted), with Polar discount codes switched off: it is never discounted again there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar

import httpx
from polar import PolarClientError, PolarDeserializationError, PolarError
from polar.v2026_10 import PolarAsync
from polar.v2026_10.errors import RefundedAlready, ResourceNotFound

from providers.base import (
    BadCredentials,
    CreatePayment,
    CredentialCheck,
    Environment,
    InvalidProviderRequest,
    NormalizedEvent,
    PaymentProvider,
    PaymentResult,
    PaymentState,
    ProviderDiscount,
    ProviderError,
    ProviderUnavailable,
    RefundRequest,
    RefundResult,
    RefundState,
    WebhookRequest,
)
from providers.polar import signing
from providers.polar.events import CHECKOUT_FIELD, KEY_FIELD, REASON_FIELD, decode, parse_event
from providers.transport import credential_check, webhook_object

TIMEOUT = httpx.Timeout(15.0, connect=5.0)
#: Polar's refund ``reason`` enum; our free text goes to metadata.
REFUND_REASONS = frozenset({"duplicate", "fraudulent", "customer_request", "service_disruption",
                            "satisfaction_guarantee", "dispute_prevention", "other"})
_REASON_ALIASES = {"requested_by_customer": "customer_request"}  # Stripe's word for it
_METADATA_VALUE_MAX = 500
#: Organization access tokens are ``polar_oat_…``; OAuth / personal ones ``polar_at_…``.
TOKEN_PREFIX = "polar_"
_CHECKOUT_STATES = {
    "open": PaymentState.PENDING,
    "confirmed": PaymentState.PROCESSING,  # the customer clicked Pay: not proof of payment
    "succeeded": PaymentState.PROCESSING,  # paid once the order says so
    "failed": PaymentState.FAILED,
    "expired": PaymentState.CANCELLED,
}
_PAID_ORDER_STATES = frozenset({"paid", "refunded", "partially_refunded"})
_REFUND_STATES = {"pending": RefundState.PENDING, "succeeded": RefundState.SUCCEEDED,
                  "failed": RefundState.FAILED, "canceled": RefundState.FAILED}

T = TypeVar("T")


def map_polar_error(exc: PolarError) -> ProviderError:
    """One SDK error → the provider error tree (raised ``from`` the SDK error by callers)."""
    if isinstance(exc, PolarClientError):
        status = exc.status_code
        if status == 429:
            return ProviderUnavailable("polar is rate limiting (HTTP 429)")
        if isinstance(exc, RefundedAlready):
            return InvalidProviderRequest("polar: the order is refunded already",
                                          code="already_refunded")
        if status in (401, 403):
            return BadCredentials(f"polar rejected the access token (HTTP {status})")
        if status == 404:
            return InvalidProviderRequest("polar: not found", code="payment_not_found")
        return InvalidProviderRequest(f"polar refused the request (HTTP {status}): "
                                      f"{str(exc.error)[:300]}")
    if isinstance(exc, PolarDeserializationError):
        return ProviderUnavailable("polar sent an answer the SDK could not read")
    return ProviderUnavailable(f"polar: {exc.message[:300]}")  # network, timeout, 5xx


def _metadata_of(obj: Any) -> dict[str, Any]:
    metadata = getattr(obj, "metadata", None)
    return metadata if isinstance(metadata, dict) else {}


class PolarProvider(PaymentProvider):
    code = "polar"
    required_keys = ("secret_key", "webhook_secret")

    @classmethod
    def check_key(cls, name: str, value: str) -> str | None:
        if name == "secret_key" and not value.startswith(TOKEN_PREFIX):
            return "a Polar access token starts with polar_ (organization tokens: polar_oat_)"
        return None

    @property
    def product_id(self) -> str:
        product = self.config.config.get("product_id")
        if not isinstance(product, str) or not product:
            raise InvalidProviderRequest("polar needs config.product_id (the Polar product "
                                         "whose checkout carries the order's price)")
        return product

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[PolarAsync]:
        """A client for one operation (the SDK owns its connection pool; closed after)."""
        environment = "production" if self.config.environment is Environment.PRODUCTION \
            else "sandbox"
        base_url = self.config.api_base_url.rstrip("/") if self.config.api_base_url else None
        async with PolarAsync(self.config.secret_key or "", environment=environment,
                              base_url=base_url, timeout=TIMEOUT) as client:
            yield client

    async def _call(self, operation: Callable[[PolarAsync], Awaitable[T]]) -> T:
        """Run ``operation`` with a client; SDK errors become provider errors."""
        try:
            async with self._client() as client:
                return await operation(client)
        except PolarError as exc:
            raise map_polar_error(exc) from exc

    # ------------------------------------------------------------ payments

    async def create_payment(self, request: CreatePayment) -> PaymentResult:
        product = self.product_id
        currency = request.currency.lower()
        metadata: dict[str, str | int | float | bool] = {
            **{k[:40]: v[:_METADATA_VALUE_MAX] for k, v in request.metadata.items()},
            "order_id": request.order_id,
            "order_number": request.order_number,
            "tenant": self.config.tenant,
            KEY_FIELD: request.idempotency_key[:_METADATA_VALUE_MAX],
        }

        async def create(client: PolarAsync) -> Any:
            existing = await self._checkout_for(client, product, request)
            if existing is not None:  # a retry of a create that reached Polar
                return existing
            body: dict[str, Any] = {
                "products": [product],
                "prices": {product: [{"amount_type": "fixed", "price_amount": request.amount,
                                      "price_currency": currency}]},
                "currency": currency,
                "allow_discount_codes": False,  # the total is discounted already
                "metadata": metadata,
            }
            if request.customer_email:
                body["customer_email"] = request.customer_email
            if request.return_url:
                body["success_url"] = request.return_url
            if request.cancel_url:
                body["return_url"] = request.cancel_url
            return await client.checkouts.create(**body)

        checkout = await self._call(create)
        return PaymentResult(
            provider_payment_id=checkout.id,
            state=_CHECKOUT_STATES.get(checkout.status, PaymentState.PROCESSING),
            amount=request.amount,
            currency=request.currency.upper(),
            redirect_url=checkout.url,
            client_secret=checkout.client_secret,
        )

    @staticmethod
    async def _checkout_for(client: PolarAsync, product: str,
                            request: CreatePayment) -> Any | None:
        """The checkout created before under ``request``'s idempotency key, if any (the
        newest of the product's checkouts, narrowed by the customer's email)."""
        listing = await client.checkouts.list(product_id=product, query=request.customer_email,
                                              limit=100)
        for checkout in listing.items:
            if _metadata_of(checkout).get(KEY_FIELD) == request.idempotency_key:
                return checkout
        return None

    async def fetch_payment(self, provider_payment_id: str) -> PaymentResult:
        """The checkout, and once it produced a paid order, that order (amount compared
        as ``net_amount``: see :mod:`providers.polar.events`)."""

        async def read(client: PolarAsync) -> tuple[Any, Any | None]:
            checkout = await client.checkouts.get(provider_payment_id)
            orders = await client.orders.list(checkout_id=provider_payment_id, limit=1)
            return checkout, (orders.items[0] if orders.items else None)

        checkout, order = await self._call(read)
        if order is not None and order.status in _PAID_ORDER_STATES:
            currency = order.currency.upper()
            fee = order.platform_fee_amount
            if (order.platform_fee_currency or order.currency).upper() != currency:
                fee = None
            return PaymentResult(provider_payment_id=checkout.id, state=PaymentState.SUCCEEDED,
                                 amount=order.net_amount, currency=currency, fee_amount=fee)
        state = _CHECKOUT_STATES.get(checkout.status, PaymentState.PROCESSING)
        failed = state is PaymentState.FAILED
        return PaymentResult(
            provider_payment_id=checkout.id, state=state, amount=checkout.net_amount,
            currency=checkout.currency.upper(), redirect_url=checkout.url,
            failure_code="checkout_failed" if failed else None,
            failure_message="the Polar checkout failed" if failed else None)

    # ------------------------------------------------------------ refunds

    async def refund(self, request: RefundRequest) -> RefundResult:
        reason = (request.reason or "").strip()
        polar_reason = _REASON_ALIASES.get(reason, reason)
        if polar_reason not in REFUND_REASONS:
            polar_reason = "customer_request"
        metadata: dict[str, str | int | float | bool] = {
            KEY_FIELD: request.idempotency_key[:_METADATA_VALUE_MAX],
            CHECKOUT_FIELD: request.provider_payment_id[:_METADATA_VALUE_MAX],
        }
        if reason:
            metadata[REASON_FIELD] = reason[:_METADATA_VALUE_MAX]

        async def send(client: PolarAsync) -> Any:
            orders = await client.orders.list(checkout_id=request.provider_payment_id, limit=1)
            order = orders.items[0] if orders.items else None
            if order is None or order.status not in _PAID_ORDER_STATES:
                raise InvalidProviderRequest("polar has no paid order for this checkout")
            if order.currency.upper() != request.currency.upper():
                raise InvalidProviderRequest("polar: refund currency differs from the order's")
            refunds = await client.refunds.list(order_id=order.id, limit=100)
            for existing in refunds.items:  # sent before under the same key
                if _metadata_of(existing).get(KEY_FIELD) == request.idempotency_key:
                    return existing
            if request.amount <= 0 or request.amount > order.refundable_amount:
                raise InvalidProviderRequest(
                    f"polar: refund of {request.amount} exceeds the "
                    f"{order.refundable_amount} left to refund")
            return await client.refunds.create(order_id=order.id, reason=polar_reason,
                                               amount=request.amount, metadata=metadata,
                                               revoke_benefits=False)

        refund = await self._call(send)
        return RefundResult(provider_refund_id=refund.id,
                            state=_REFUND_STATES.get(refund.status, RefundState.PENDING),
                            amount=refund.amount, currency=refund.currency.upper())

    # ------------------------------------------------------------ webhooks

    def verify_webhook(self, request: WebhookRequest, *, now: datetime | None = None) -> None:
        """Standard Webhooks signature and 5-minute window (:mod:`providers.polar.signing`)
        before anything is stored; then the body must be a Polar event."""
        signing.verify(request.headers, request.body, self.config.webhook_secret, now=now)
        self._decode(request.body)

    @staticmethod
    def _decode(body: bytes) -> dict[str, Any]:
        event = webhook_object(body, provider="polar")
        decode(event)
        return event  # type: ignore[no-any-return]

    def parse_webhook(self, request: WebhookRequest) -> NormalizedEvent:
        return parse_event(self._decode(request.body),
                           request.headers.get(signing.ID_HEADER, "").strip())

    # ------------------------------------------------------------ discounts (coupon sync)

    @staticmethod
    def _discount(discount: Any) -> ProviderDiscount:
        return ProviderDiscount(id=discount.id, max_redemptions=discount.max_redemptions,
                                redemptions_count=discount.redemptions_count or 0)

    async def get_discount(self, discount_id: str) -> ProviderDiscount | None:
        try:
            async with self._client() as client:
                return self._discount(await client.discounts.get(discount_id))
        except ResourceNotFound:
            return None
        except PolarError as exc:
            if isinstance(exc, PolarClientError) and exc.status_code == 404:
                return None
            raise map_polar_error(exc) from exc

    async def update_discount_max_redemptions(self, discount_id: str,
                                              max_redemptions: int) -> ProviderDiscount:
        discount = await self._call(
            lambda client: client.discounts.update(discount_id, max_redemptions=max_redemptions))
        return self._discount(discount)

    async def delete_discount(self, discount_id: str) -> bool:
        try:
            async with self._client() as client:
                await client.discounts.delete(discount_id)
        except PolarError as exc:
            if isinstance(exc, PolarClientError) and exc.status_code == 404:
                return False  # gone already
            raise map_polar_error(exc) from exc
        return True

    # ------------------------------------------------------------ misc

    async def test_credentials(self) -> CredentialCheck:
        async def organization(client: PolarAsync) -> None:
            found = await client.organizations.list(limit=1)
            if not found.items:
                raise BadCredentials("polar: the token reaches no organization")

        return await credential_check(self._call(organization),
                                      ok_message="polar accepted the access token")
