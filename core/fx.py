"""FX kernel: rate sources, quotes, rate validation and the rate API's wire format.

Every rate in Paymesh is quoted one way: **units of the currency per 1 USD** (``EUR
0.92``, ``VND 24500``), as an exact ``Decimal``. A :class:`Quote` is one currency's rate
with where it came from; a :class:`Conversion` is an amount converted with the quotes it
used, so whoever stores it keeps ``fx_rate`` and ``fx_source``. The look-up through the
layers (manual → cached → api → expired → fallback) lives in :mod:`owner.fx`; the
arithmetic is :func:`core.money.convert`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum

from core.money import CURRENCIES, convert

BASE = "USD"
#: Rate columns are ``NUMERIC(22, 10)``: up to 12 integer digits and 10 decimals.
RATE_DECIMALS = 10
RATE_INTEGER_DIGITS = 12
MAX_RATE = Decimal(10) ** RATE_INTEGER_DIGITS - Decimal(1).scaleb(-RATE_DECIMALS)
_QUANTUM = Decimal(1).scaleb(-RATE_DECIMALS)
#: What an owner may type as a rate: plain decimal notation, nothing else.
_PLAIN = re.compile(rf"[0-9]{{1,{RATE_INTEGER_DIGITS}}}(\.[0-9]{{1,{RATE_DECIMALS}}})?")


class Source(StrEnum):
    """Where a rate came from, in the order a conversion tries them."""

    NATIVE = "native"  # no conversion (USD itself, or the same currency)
    MANUAL = "manual"  # an owner's override
    CACHED = "cached"  # fetched from the rate API less than the TTL ago
    API = "api"  # fetched from the rate API for this conversion
    EXPIRED = "expired"  # the last fetched rate, older than the TTL (the API failed)
    FALLBACK = "fallback"  # PAYMESH_FX_FALLBACK


#: Sources ordered from most to least trustworthy (a cross conversion reports the worse).
_TRUST = {s: i for i, s in enumerate(
    (Source.NATIVE, Source.MANUAL, Source.API, Source.CACHED, Source.EXPIRED, Source.FALLBACK))}


class RateError(ValueError):
    """A value that is not an acceptable rate."""


@dataclass(frozen=True, slots=True)
class Quote:
    """One currency's rate (units per 1 USD), its source and when it was fetched or set
    (``None`` for ``native`` and ``fallback``)."""

    currency: str
    rate: Decimal
    source: Source
    fetched_at: datetime | None = None


NATIVE_USD = Quote(BASE, Decimal(1), Source.NATIVE)


@dataclass(frozen=True, slots=True)
class Conversion:
    """``amount`` (minor units of ``currency``) converted from ``original`` minor units of
    ``from_currency``, with the quote of each side (USD's is ``native``)."""

    original: int
    from_currency: str
    amount: int
    currency: str
    from_quote: Quote
    to_quote: Quote

    @property
    def rate(self) -> Decimal:
        """The rate to store as ``fx_rate``: the non-USD side's rate per 1 USD (``1`` when
        nothing was converted). A conversion between two non-USD currencies has two
        rates: read :attr:`from_quote` and :attr:`to_quote`."""
        return self._quote().rate

    @property
    def source(self) -> Source:
        """The source to store as ``fx_source``; for a conversion between two non-USD
        currencies the less trustworthy of the two."""
        if self.from_quote.currency != BASE and self.to_quote.currency != BASE \
                and self.from_currency != self.currency:
            return max(self.from_quote.source, self.to_quote.source, key=_TRUST.__getitem__)
        return self._quote().source

    def _quote(self) -> Quote:
        if self.from_currency == self.currency:
            return Quote(self.currency, Decimal(1), Source.NATIVE)
        if self.to_quote.currency == BASE:
            return self.from_quote
        if self.from_quote.currency == BASE:
            return self.to_quote
        raise ValueError(f"{self.from_currency}->{self.currency} has two rates; read "
                         "from_quote and to_quote")


def apply(amount: int, from_quote: Quote, to_quote: Quote) -> Conversion:
    """Convert ``amount`` minor units with two quotes: the one conversion function, once
    rounded, in the target currency's exponent (:func:`core.money.convert`)."""
    if from_quote.currency == to_quote.currency:
        native = Quote(from_quote.currency, Decimal(1), Source.NATIVE)
        return Conversion(amount, from_quote.currency, amount, to_quote.currency, native, native)
    converted = convert(amount, from_quote.currency, to_quote.currency,
                        from_quote.rate, to_quote.rate)
    return Conversion(amount, from_quote.currency, converted, to_quote.currency,
                      from_quote, to_quote)


def parse_rate(value: object) -> Decimal:
    """A rate an owner typed (a string in plain decimal notation: ``"0.92"``, ``"24500"``)
    → ``Decimal``; positive, at most 12 integer digits and 10 decimals. Anything else —
    numbers, exponents, signs, ``NaN`` — is a :class:`RateError`."""
    if not isinstance(value, str):
        raise RateError("a rate must be a decimal string such as \"0.92\"")
    if not _PLAIN.fullmatch(value):
        raise RateError(f"'{value[:40]}' is not a positive decimal with at most "
                        f"{RATE_INTEGER_DIGITS} digits before and {RATE_DECIMALS} after the point")
    rate = Decimal(value)
    if rate <= 0:
        raise RateError("a rate must be greater than zero")
    return rate


def check_fetched_rate(value: object) -> Decimal:
    """A rate the rate API sent (a JSON number, decoded as ``Decimal``) → a valid rate,
    rounded to 10 decimals (what the column keeps); anything else is a :class:`RateError`."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise RateError(f"not a number: {str(value)[:40]!r}")
    try:
        rate = value.quantize(_QUANTUM, rounding=ROUND_HALF_UP)
    except InvalidOperation as exc:
        raise RateError(f"out of range: {str(value)[:40]}") from exc
    if not 0 < rate <= MAX_RATE:
        raise RateError(f"out of range: {str(value)[:40]}")
    return rate


def _no_constants(name: str) -> Decimal:
    raise ValueError(f"{name} is not a rate")


def decode_rates(body: bytes) -> tuple[dict[str, Decimal], list[str]]:
    """The rate API's answer, ``{"rates": {"EUR": 0.92, …}}`` per USD (an optional ``base``
    must say ``USD``), decoded without ever passing through ``float``: the valid rates of
    known currencies, and the keys that were refused. Raises :class:`RateError` when the
    body is not such a document or holds no usable rate."""
    try:
        document = json.loads(body, parse_float=Decimal, parse_int=Decimal,
                              parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise RateError(f"not JSON: {type(exc).__name__}") from None
    if not isinstance(document, dict) or not isinstance(document.get("rates"), dict):
        raise RateError("no 'rates' object")
    base = document.get("base", BASE)
    if base != BASE:
        raise RateError(f"rates are quoted per {str(base)[:8]!r}, not per USD")
    rates: dict[str, Decimal] = {}
    refused: list[str] = []
    for code, value in document["rates"].items():
        if code == BASE:
            continue
        try:
            if code not in CURRENCIES:
                raise RateError("unknown currency")
            rates[code] = check_fetched_rate(value)
        except RateError:
            refused.append(str(code)[:8])
    if not rates:
        raise RateError("no usable rate in the answer")
    return rates, refused


def parse_fallback(text: str) -> dict[str, Decimal]:
    """``PAYMESH_FX_FALLBACK`` (``VND=24500,EUR=0.92``) → rates; a bad entry is a
    ``ValueError`` naming it (the process refuses to start with it)."""
    rates: dict[str, Decimal] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        code, sep, value = entry.partition("=")
        code = code.strip().upper()
        if not sep or code not in CURRENCIES or code == BASE:
            raise ValueError(f"PAYMESH_FX_FALLBACK: '{entry}' is not CODE=RATE with a "
                             "non-USD ISO-4217 code")
        try:
            rates[code] = parse_rate(value.strip())
        except RateError as exc:
            raise ValueError(f"PAYMESH_FX_FALLBACK: '{entry}': {exc}") from None
    return rates
