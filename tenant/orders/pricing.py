"""Order totals, computed on the server in integer minor units.

``subtotal = Σ quantity × unit_amount``; ``discount`` (coupons, referrals) comes off the
subtotal; tax is the tenant's rate on what is left, rounded once by the one rule in
:mod:`core.money`; ``total = subtotal − discount + tax``. ``original_amount`` is what the
customer would have paid without the discount. The currency's exponent does not enter the
arithmetic (everything is already in minor units); it matters only for display.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.errors import ValidationError
from core.money import percent_of

#: Largest order total accepted, in minor units (well inside BIGINT and every provider).
MAX_TOTAL = 10**13


@dataclass(frozen=True)
class Totals:
    subtotal: int
    discount: int
    tax: int
    total: int
    original_amount: int


def compute(line_amounts: list[int], tax_rate: Decimal, discount: int = 0) -> Totals:
    subtotal = sum(line_amounts)
    if not 0 <= discount <= subtotal:
        raise ValidationError("discount cannot exceed the subtotal", param="coupon_code")
    tax = percent_of(subtotal - discount, tax_rate)
    total = subtotal - discount + tax
    if total > MAX_TOTAL:
        raise ValidationError("the order total is too large", param="items")
    return Totals(subtotal=subtotal, discount=discount, tax=tax, total=total,
                  original_amount=subtotal + percent_of(subtotal, tax_rate))
