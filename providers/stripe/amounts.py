"""Stripe's amount units, which differ from ISO-4217 minor units for a few currencies.

Paymesh amounts are ISO minor units (:mod:`core.money`). Stripe treats MGA as
zero-decimal (ISO: 2) and, for backwards compatibility, expects ISK (ISO: 0) in
hundredths. Converting here, exactly, keeps a 1,000 ISK order from being charged 10 ISK.
"""

from __future__ import annotations

from core.money import exponent
from providers.base import InvalidProviderRequest

#: https://docs.stripe.com/currencies#zero-decimal
ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA"}
    | {"PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}
)
#: Zero-decimal in ISO but sent to Stripe as two-decimal (amount × 100).
TWO_DECIMAL_IN_API = frozenset({"ISK"})


def stripe_exponent(currency: str) -> int:
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return 0
    if code in TWO_DECIMAL_IN_API:
        return 2
    return exponent(code)


def to_stripe(amount: int, currency: str) -> int:
    """ISO minor units → Stripe's integer amount; refuses a value Stripe cannot express."""
    shift = stripe_exponent(currency) - exponent(currency)
    if shift >= 0:
        return amount * 10**shift
    factor = 10**-shift
    if amount % factor:
        raise InvalidProviderRequest(
            f"{amount} minor units of {currency.upper()} cannot be charged by Stripe, "
            f"which counts {currency.upper()} in whole units"
        )
    return amount // factor


def from_stripe(amount: int, currency: str) -> int:
    """Stripe's integer amount → ISO minor units (exact: Stripe's unit is never finer)."""
    shift = exponent(currency) - stripe_exponent(currency)
    if shift >= 0:
        return amount * 10**shift
    return amount // 10**-shift
