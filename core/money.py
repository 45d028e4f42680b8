"""Money: integer minor units + ISO-4217 code. Rates are ``Decimal``. One rounding rule.

Rounding rule (the only one in Paymesh): amounts derived from a rate (fees, FX, tax,
percent discounts, commissions) are rounded to the nearest minor unit, halves away from
zero (``ROUND_HALF_UP``), once, at the end of the computation.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal, localcontext

from core.errors import ValidationError

#: ISO-4217 minor-unit exponents that differ from 2. Every other active code uses 2.
_EXPONENT_OVERRIDES: dict[str, int] = {
    # zero-decimal
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0,
    # three-decimal
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    # four-decimal
    "CLF": 4, "UYW": 4,
}

#: ISO-4217 codes Paymesh accepts.
CURRENCIES: frozenset[str] = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD
    BTN BWP BYN BZD CAD CDF CHF CLF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB
    EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD
    JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK
    MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN
    PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB
    TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYI UYU UYW UZS VES VND VUV WST XAF XCD XOF
    XPF YER ZAR ZMW ZWL""".split()
)


def normalize_currency(code: str, *, param: str = "currency") -> str:
    """Upper-case and validate an ISO-4217 code, or raise a 400."""
    if not isinstance(code, str) or code.upper() not in CURRENCIES:
        raise ValidationError(f"'{code}' is not a supported ISO-4217 currency code", param=param)
    return code.upper()


def exponent(currency: str) -> int:
    return _EXPONENT_OVERRIDES.get(currency.upper(), 2)


def _exact_int(value: object, name: str) -> int:
    """``value`` if it is an ``int`` (minor units); a float (or a bool) is a bug, not money."""
    if type(value) is not int:
        raise TypeError(f"{name} must be an int of minor units, not {type(value).__name__}")
    return value


def _exact_decimal(value: object, name: str) -> Decimal:
    """``value`` as an exact, finite ``Decimal``: an ``int`` is exact too; a float never is."""
    if type(value) is int:
        return Decimal(value)
    if not isinstance(value, Decimal):
        raise TypeError(f"{name} must be a Decimal, not {type(value).__name__}")
    if not value.is_finite():
        raise ValueError(f"{name} must be finite, not {value}")
    return value


def round_minor(value: Decimal) -> int:
    """The rounding rule: nearest minor unit, halves away from zero."""
    return int(_exact_decimal(value, "value").quantize(Decimal(1), rounding=ROUND_HALF_UP))


def percent_of(amount: int, percent: Decimal) -> int:
    return round_minor(Decimal(_exact_int(amount, "amount"))
                       * _exact_decimal(percent, "percent") / Decimal(100))


def processing_fee(amount: int, percent: Decimal, fixed: int) -> int:
    """A provider's fee on ``amount``: ``percent`` of it plus ``fixed`` minor units. The one
    formula behind both a quoted fee (provider selection) and a charged one (the sandbox)."""
    return percent_of(amount, percent) + _exact_int(fixed, "fixed")


def allocate(amount: int, weights: Sequence[Decimal | int]) -> list[int]:
    """``amount`` split in proportion to ``weights`` (percentages, or any non-negative
    shares), in parts that always add up to ``amount`` exactly.

    Each boundary between parts is placed by the one rounding rule on the running share
    (``round(amount × cumulative weight / total)``), and a part is the difference of two
    boundaries: the parts telescope to the whole, each is within one minor unit of its
    exact share, and none has a sign other than ``amount``'s.
    """
    _exact_int(amount, "amount")
    shares = [_exact_decimal(w, "weight") for w in weights]
    if not shares or any(w < 0 for w in shares):
        raise ValueError("weights must be a non-empty list of non-negative numbers")
    total = sum(shares, Decimal(0))
    if total == 0:
        raise ValueError("weights must not all be zero")
    parts, placed, running = [], 0, Decimal(0)
    for share in shares:
        running += share
        boundary = round_minor(Decimal(amount) * running / total)
        parts.append(boundary - placed)
        placed = boundary
    return parts


def convert(amount: int, from_currency: str, to_currency: str,
            from_rate: Decimal, to_rate: Decimal) -> int:
    """The one conversion: ``amount`` minor units of ``from_currency`` in minor units of
    ``to_currency``, through USD.

    Both rates are quoted the way Paymesh quotes every rate: units of the currency per
    1 USD (USD's own rate is 1). The arithmetic is exact ``Decimal`` (``amount`` in major
    units ÷ ``from_rate`` × ``to_rate``, shifted to ``to_currency``'s exponent) and the
    rounding rule is applied once, at the end.
    """
    _exact_int(amount, "amount")
    rates = (_exact_decimal(from_rate, "from_rate"), _exact_decimal(to_rate, "to_rate"))
    if rates[0] <= 0 or rates[1] <= 0:
        raise ValueError("rates must be positive")
    shift = exponent(to_currency) - exponent(from_currency)
    with localcontext() as ctx:
        ctx.prec = 60  # far beyond any amount × rate: the only rounding is round_minor's
        return round_minor(Decimal(amount).scaleb(shift) * rates[1] / rates[0])


def to_major(amount: int, currency: str) -> Decimal:
    """Minor units → a ``Decimal`` in major units (for display only)."""
    return Decimal(amount).scaleb(-exponent(currency))


def parse_major(value: str, currency: str) -> int:
    """A decimal string in major units → minor units; refuses sub-minor precision."""
    quantum = Decimal(1).scaleb(-exponent(currency))
    amount = Decimal(value)
    if amount != amount.quantize(quantum):
        raise ValidationError(f"{value} has more decimals than {currency} allows", param="amount")
    return int(amount.scaleb(exponent(currency)))


def plain_decimal(value: Decimal) -> Decimal:
    """``Decimal('2.900')`` → ``Decimal('2.9')``, never scientific notation (for output)."""
    normalized = value.normalize()
    return normalized.quantize(Decimal(1)) if normalized.as_tuple().exponent > 0 else normalized  # type: ignore[operator]
