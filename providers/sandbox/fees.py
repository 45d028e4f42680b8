"""What the sandbox gateway charges, like a real gateway's price list.

The owner catalog's seed quotes exactly these (``owner/catalog/seed.py`` reads them), so
a quote and the fee a sandbox payment is charged agree; ledgers and net-payout reports
see a realistic fee. Currencies not listed pay :data:`FEE_PERCENT`.
"""

from __future__ import annotations

from decimal import Decimal

from core.money import processing_fee

FEE_PERCENT = Decimal("2.9")
#: currency → (percent, fixed fee in minor units)
FEES: dict[str, tuple[Decimal, int]] = {
    "USD": (Decimal("2.9"), 30), "EUR": (Decimal("2.5"), 25), "GBP": (Decimal("2.5"), 20),
    "JPY": (Decimal("3.6"), 0), "KWD": (Decimal("2.9"), 100), "NGN": (Decimal("1.5"), 10_000),
    "KES": (Decimal("2.9"), 0), "VND": (Decimal("2.0"), 0),
}


def fee_for(amount: int, currency: str) -> int:
    """What the sandbox charges on ``amount`` (the catalog's quote, the same formula)."""
    percent, fixed = FEES.get(currency, (FEE_PERCENT, 0))
    return processing_fee(amount, percent, fixed)
