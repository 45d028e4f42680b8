"""The provider interface, the neutral request/result types and the provider error tree.

Core and tenant code speak only these types; every gateway translates them to and from
its own API. Amounts are integer minor units with an upper-case ISO-4217 currency.
"""

from __future__ import annotations

import abc
import functools
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from providers.redaction import redact

if TYPE_CHECKING:
    import httpx


class Environment(StrEnum):
    SANDBOX = "sandbox"
    PRODUCTION = "production"


class PaymentState(StrEnum):
    """Provider-side state of one payment attempt, normalized."""

    PENDING = "pending"  # created, waiting for the customer (redirect / client secret)
    REQUIRES_ACTION = "requires_action"  # 3-D Secure or similar
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RefundState(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    MANUAL_REQUIRED = "manual_required"  # bank transfer / cash: staff pays it back by hand


class EventType(StrEnum):
    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_FAILED = "payment.failed"
    REFUND_SUCCEEDED = "refund.succeeded"
    REFUND_FAILED = "refund.failed"
    DISPUTE_OPENED = "dispute.opened"
    DISPUTE_CLOSED = "dispute.closed"
    ACCOUNT_UPDATED = "account.updated"
    IGNORED = "ignored"  # verified, stored, but nothing to apply


class ProviderConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What a provider instance is initialized with: one tenant's decrypted configuration."""

    tenant: str  # tenant slug
    code: str  # provider code
    environment: Environment = Environment.SANDBOX
    #: The catalog's ``api_base_url`` or ``sandbox_api_base_url`` for ``environment``.
    api_base_url: str | None = None
    public_key: str | None = None
    secret_key: str | None = None
    webhook_secret: str | None = None
    config: dict[str, Any] = {}
    #: Paymesh's own public base URL (hosted pages, webhook and return URLs).
    public_base_url: str = "http://127.0.0.1:8000"


class CreatePayment(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    order_number: str
    amount: int
    currency: str
    idempotency_key: str  # deterministic; the provider must receive it (or its equivalent)
    customer_email: str | None = None
    description: str | None = None
    return_url: str | None = None
    cancel_url: str | None = None
    metadata: dict[str, str] = {}
    #: Marketplace charges: platform fee and destination account (Stripe Connect style).
    application_fee_amount: int | None = None
    destination_account: str | None = None


class PaymentResult(msgspec.Struct, frozen=True, kw_only=True):
    provider_payment_id: str
    state: PaymentState
    amount: int
    currency: str
    redirect_url: str | None = None
    client_secret: str | None = None
    fee_amount: int | None = None  # provider fee in minor units, when the provider says
    failure_code: str | None = None
    failure_message: str | None = None
    #: Extra non-secret data the client may show (bank details, transfer reference, …).
    instructions: dict[str, Any] = {}


class RefundRequest(msgspec.Struct, frozen=True, kw_only=True):
    provider_payment_id: str
    amount: int
    currency: str
    idempotency_key: str
    reason: str | None = None


class RefundResult(msgspec.Struct, frozen=True, kw_only=True):
    provider_refund_id: str | None
    state: RefundState
    amount: int
    currency: str


class ProviderDiscount(msgspec.Struct, frozen=True, kw_only=True):
    """A provider-side discount a coupon may link (``provider_discount``), as the coupon
    sync reads it."""

    id: str
    max_redemptions: int | None  # None: unlimited
    redemptions_count: int = 0


class WebhookRequest(msgspec.Struct, frozen=True, kw_only=True):
    headers: dict[str, str]  # names lower-cased
    body: bytes


class NormalizedEvent(msgspec.Struct, frozen=True, kw_only=True):
    provider_event_id: str  # unique per provider; the inbox dedupes on it
    type: EventType
    provider_payment_id: str | None = None
    provider_refund_id: str | None = None
    provider_dispute_id: str | None = None
    provider_account_id: str | None = None
    amount: int | None = None
    currency: str | None = None
    #: Our own reference when the provider echoes it (order id, transfer reference).
    reference: str | None = None
    fee_amount: int | None = None
    occurred_at: datetime | None = None
    #: Type-specific facts: dispute ``status``/``outcome``/``reason``, account flags,
    #: failure code/message.
    data: dict[str, Any] = {}


class CredentialCheck(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    message: str


# ---------------------------------------------------------------------------- errors


class ProviderError(Exception):
    """Base of every provider failure. ``code`` is stable and safe to show to clients.

    ``message`` may quote the provider (or a proxy in front of it), so it is redacted
    here (key-shaped strings) and again by :class:`PaymentProvider` with the tenant's
    own secrets before it leaves the provider.
    """

    code = "provider_error"
    retryable = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message
        if code:
            self.code = code

    def redact(self, secrets: tuple[str | None, ...]) -> None:
        """Mask ``secrets`` (exact values) in the message."""
        self.message = redact(self.message, secrets)
        self.args = (self.message,)


class PaymentDeclined(ProviderError):
    code = "card_declined"


class InsufficientFunds(PaymentDeclined):
    code = "insufficient_funds"


class RequiresAction(ProviderError):
    code = "requires_action"


class ProviderUnavailable(ProviderError):
    """Network error, timeout or 5xx at the provider: safe to retry / fail over."""

    code = "provider_unavailable"
    retryable = True


class BadCredentials(ProviderError):
    code = "provider_bad_credentials"


class InvalidProviderRequest(ProviderError):
    code = "provider_invalid_request"


class NotSupported(ProviderError):
    code = "provider_not_supported"


class WebhookVerificationError(ProviderError):
    """Forged, stale or malformed webhook. Never stored."""

    code = "invalid_signature"


class StaleWebhook(WebhookVerificationError):
    code = "stale_signature"


class MalformedWebhook(WebhookVerificationError):
    code = "malformed_webhook"


# ---------------------------------------------------------------------------- interface


class PaymentProvider(abc.ABC):
    """One gateway, initialized with one tenant's configuration.

    Instances are cheap and short-lived; ``http`` is shared and owned by the caller.
    """

    code: ClassVar[str]
    #: Keys a tenant must supply (``public_key``, ``secret_key``, ``webhook_secret``).
    required_keys: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _REDACTED_CALLS:
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "__redacted__", False):
                setattr(cls, name, _redacting(method))

    def secrets(self) -> tuple[str | None, ...]:
        """The configured secrets, masked by value in whatever leaves the provider."""
        config = self.config
        return (config.secret_key, config.webhook_secret, config.public_key,
                *(v for k, v in config.config.items()
                  if isinstance(v, str) and any(w in k.lower() for w in _SECRET_WORDS)))

    def __init__(self, config: ProviderConfig, http: httpx.AsyncClient | None = None) -> None:
        if http is None:  # imported here: applying webhook events needs no HTTP client
            import httpx

            http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))
        self.config = config
        self.http = http

    @abc.abstractmethod
    async def create_payment(self, request: CreatePayment) -> PaymentResult:
        """Create the provider-side payment. Same ``idempotency_key`` → same payment."""

    @abc.abstractmethod
    async def fetch_payment(self, provider_payment_id: str) -> PaymentResult:
        """Read the provider's current state of a payment (reconciliation)."""

    @abc.abstractmethod
    async def refund(self, request: RefundRequest) -> RefundResult:
        """Refund ``amount`` of a captured payment. Same ``idempotency_key`` → one refund."""

    @abc.abstractmethod
    def verify_webhook(self, request: WebhookRequest, *, now: datetime | None = None) -> None:
        """Raise :class:`WebhookVerificationError` unless the request is authentic and fresh."""

    @abc.abstractmethod
    def parse_webhook(self, request: WebhookRequest) -> NormalizedEvent:
        """Turn a verified webhook body into one normalized event."""

    @classmethod
    def check_key(cls, name: str, value: str) -> str | None:
        """Why ``value`` cannot be this provider's ``name`` key (a message), or ``None``:
        checked when a tenant saves it, so a malformed key is refused at once rather than
        at the first checkout."""
        return None

    def public_config(self) -> dict[str, Any]:
        """What a browser may see (publishable key, …). Never secrets."""
        return {}

    @abc.abstractmethod
    async def test_credentials(self) -> CredentialCheck:
        """Call the provider with the stored keys and say whether they work."""

    # Provider-side discounts (the coupon sync); only providers that own discounts have them.

    async def get_discount(self, discount_id: str) -> ProviderDiscount | None:
        """The provider's discount ``discount_id``, or ``None`` when it does not exist."""
        raise NotSupported(f"{self.code} has no discounts")

    async def update_discount_max_redemptions(self, discount_id: str,
                                              max_redemptions: int) -> ProviderDiscount:
        """Set the discount's ``max_redemptions``; the discount as it now is."""
        raise NotSupported(f"{self.code} has no discounts")

    async def delete_discount(self, discount_id: str) -> bool:
        """Delete the discount; ``False`` when it was already gone."""
        raise NotSupported(f"{self.code} has no discounts")


_REDACTED_CALLS = ("create_payment", "fetch_payment", "refund", "test_credentials",
                   "get_discount", "update_discount_max_redemptions", "delete_discount")
_SECRET_WORDS = ("secret", "key", "token", "password", "hash")


def _redacting(method: Any) -> Any:
    """``method`` whose provider errors and provider texts (failure messages, credential
    check reports) have the instance's secrets masked (:func:`providers.redaction.redact`)."""

    @functools.wraps(method)
    async def call(self: PaymentProvider, *args: Any, **kwargs: Any) -> Any:
        try:
            result = await method(self, *args, **kwargs)
        except ProviderError as exc:
            exc.redact(self.secrets())
            raise
        if isinstance(result, PaymentResult) and result.failure_message:
            return msgspec.structs.replace(
                result, failure_message=redact(result.failure_message, self.secrets()))
        if isinstance(result, CredentialCheck):
            return msgspec.structs.replace(result,
                                           message=redact(result.message, self.secrets()))
        return result

    call.__redacted__ = True  # type: ignore[attr-defined]
    return call
