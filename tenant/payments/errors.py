"""Provider failures as API errors (part of the one hierarchy in :mod:`core.errors`)."""

from __future__ import annotations

from core.errors import Conflict, NotFound, PaymeshError, ServiceUnavailable, UnprocessableError
from providers.base import (
    BadCredentials,
    InvalidProviderRequest,
    NotSupported,
    PaymentDeclined,
    ProviderError,
    ProviderUnavailable,
    RequiresAction,
)


class PaymentRequired(PaymeshError):
    """The customer's payment was refused (declined, insufficient funds, needs 3-D S)."""

    status_code = 402
    type = "card_error"
    code = "card_declined"


class ProviderRejected(UnprocessableError):
    code = "provider_error"


class OrderNotPayable(Conflict):
    code = "order_not_payable"


class UnknownPaymentAttempt(NotFound):
    """No attempt with this provider payment id (yet): the webhook worker retries later."""

    code = "unknown_payment"


def api_error(exc: ProviderError, provider: str) -> PaymeshError:
    """The client-facing error for a provider failure; never leaks provider secrets."""
    if isinstance(exc, (PaymentDeclined, RequiresAction)):
        return PaymentRequired(exc.message, code=exc.code)
    if isinstance(exc, ProviderUnavailable):
        return ServiceUnavailable(f"{provider} is unavailable right now; retry shortly",
                                  code="provider_unavailable")
    if isinstance(exc, BadCredentials):
        return ProviderRejected(f"{provider} rejected the stored credentials; check the "
                                "provider configuration", code=exc.code, param="provider")
    if isinstance(exc, (InvalidProviderRequest, NotSupported)):
        return ProviderRejected(f"{provider}: {exc.message}", code=exc.code, param="provider")
    return ProviderRejected(f"{provider} failed: {exc.message}", code=exc.code,
                            param="provider")
