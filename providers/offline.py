"""What providers without an API (bank transfer, cash) share: nobody to ask, refunds by hand."""

from __future__ import annotations

from providers.base import (
    PaymentProvider,
    PaymentResult,
    PaymentState,
    RefundRequest,
    RefundResult,
    RefundState,
)

#: ISO-4217 "no currency": the amount is unknown until staff or a bank feed report it.
UNKNOWN_CURRENCY = "XXX"


class OfflineProvider(PaymentProvider):
    """Settled outside any API: by a bank feed's webhook or by staff marking it paid."""

    async def fetch_payment(self, provider_payment_id: str) -> PaymentResult:
        """No API to ask: pending, with an unknown amount, until the money is reported."""
        return PaymentResult(provider_payment_id=provider_payment_id,
                             state=PaymentState.PENDING, amount=0, currency=UNKNOWN_CURRENCY)

    async def refund(self, request: RefundRequest) -> RefundResult:
        """Staff pay it back by hand; Paymesh records that it is owed."""
        return RefundResult(provider_refund_id=None, state=RefundState.MANUAL_REQUIRED,
                            amount=request.amount, currency=request.currency)
