"""``CashProvider``: pay at the desk; a tenant admin marks the order paid (audited there).

Nothing external exists, so every call answers locally: payments stay pending until staff
confirm them, refunds are handed back over the counter (``manual_required``), and there
are no webhooks to accept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from providers.base import (
    CreatePayment,
    CredentialCheck,
    NormalizedEvent,
    NotSupported,
    PaymentResult,
    PaymentState,
    WebhookRequest,
    WebhookVerificationError,
)
from providers.offline import OfflineProvider

#: ISO-4217 "no currency": what a provider without an API reports for an unknown amount.


class CashProvider(OfflineProvider):
    code = "cash"
    required_keys = ()

    async def create_payment(self, request: CreatePayment) -> PaymentResult:
        return PaymentResult(
            provider_payment_id=f"cash_{request.order_id}",
            state=PaymentState.PENDING,
            amount=request.amount,
            currency=request.currency,
            instructions={
                "method": "cash",
                "message": "Pay at the desk.",
                "order_number": request.order_number,
                "amount": request.amount,
                "currency": request.currency,
            },
        )

    def verify_webhook(self, request: WebhookRequest, *, now: datetime | None = None) -> None:
        raise WebhookVerificationError("cash payments have no webhooks")

    def parse_webhook(self, request: WebhookRequest) -> NormalizedEvent:
        raise NotSupported("cash payments have no webhooks")

    def public_config(self) -> dict[str, Any]:
        return {}

    async def test_credentials(self) -> CredentialCheck:
        return CredentialCheck(ok=True, message="cash needs no credentials")
