"""Property tests of the money math (core/money.py, core/fx.py): no float anywhere, one
rounding at the end, splits that add up, fees that are never negative.

Derandomized (the same examples every run): a failure is reproducible, never flaky.
"""

from __future__ import annotations

import ast
import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.fx import NATIVE_USD, Quote, RateError, Source, apply, decode_rates, parse_rate
from core.money import allocate, convert, exponent, percent_of, processing_fee, round_minor

PROPERTIES = settings(derandomize=True, max_examples=400, deadline=None)
ROOT = Path(__file__).resolve().parents[2]

#: Exponents 0 (JPY, VND), 2 (USD, EUR, GBP), 3 (KWD, BHD) and 4 (CLF).
CURRENCIES = st.sampled_from(["USD", "EUR", "GBP", "JPY", "VND", "KWD", "BHD", "CLF"])
#: Rates as the API and the owner give them: positive, at most 10 decimals, within
#: what the rate column holds (between 10^-6 and 10^7 units per USD here, which covers
#: every real currency with room to spare).
RATES = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("10000000"), places=10,
                    allow_nan=False, allow_infinity=False).filter(lambda d: d > 0)
AMOUNTS = st.integers(min_value=0, max_value=10**12)
PERCENTS = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False,
                       allow_infinity=False)


def minor_unit_value(of: str, in_: str, rate_of: Decimal, rate_in: Decimal) -> Decimal:
    """What one minor unit of ``of`` is worth in minor units of ``in_``."""
    return Decimal(10) ** (exponent(in_) - exponent(of)) * rate_in / rate_of


@PROPERTIES
@given(AMOUNTS, CURRENCIES, CURRENCIES, RATES, RATES)
def test_a_conversion_is_rounded_once_to_the_nearest_minor_unit(amount, a, b, ra, rb):
    """|converted − exact| ≤ ½ minor unit of the target: one rounding, at the end."""
    ra = Decimal(1) if a == "USD" else ra
    rb = Decimal(1) if b == "USD" else rb
    converted = convert(amount, a, b, ra, rb)
    exact = Decimal(amount) / minor_unit_value(b, a, rb, ra)
    assert abs(converted - exact) <= Decimal("0.5")
    assert convert(-amount, a, b, ra, rb) == -converted  # halves away from zero


@PROPERTIES
@given(AMOUNTS, CURRENCIES, CURRENCIES, RATES, RATES)
def test_a_round_trip_comes_back_within_one_minor_unit_where_exponents_allow(
        amount, a, b, ra, rb):
    """A → B → A is off by at most ½ + k/2 minor units of A, where k is what one minor
    unit of B is worth in minor units of A (two roundings, each ≤ ½ of its own unit).

    So the round trip is within ONE minor unit exactly when B's minor unit is worth no
    more than A's (k ≤ 1): USD→VND→USD, USD→KWD→USD, VND→JPY→VND at 1 VND ≤ 1 JPY. The
    other way round (VND→USD→VND at 24 500 VND/USD: k = 245) it cannot be, since a cent
    holds 245 dong; the bound then is (1 + k)/2.
    """
    ra = Decimal(1) if a == "USD" else ra
    rb = Decimal(1) if b == "USD" else rb
    back = convert(convert(amount, a, b, ra, rb), b, a, rb, ra)
    k = minor_unit_value(b, a, rb, ra)
    assert abs(back - amount) <= (1 + k) / 2
    if k <= 1:
        assert abs(back - amount) <= 1


@PROPERTIES
@given(AMOUNTS, AMOUNTS, CURRENCIES, CURRENCIES, RATES, RATES)
def test_conversion_keeps_order(x, y, a, b, ra, rb):
    low, high = sorted((x, y))
    assert convert(low, a, b, ra, rb) <= convert(high, a, b, ra, rb)


@PROPERTIES
@given(AMOUNTS, st.lists(PERCENTS, min_size=1, max_size=8).filter(lambda w: sum(w) > 0))
def test_percentage_splits_add_up_to_the_whole(amount, weights):
    parts = allocate(amount, weights)
    assert sum(parts) == amount
    total = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        assert part >= 0
        assert abs(part - Decimal(amount) * weight / total) < 1


@PROPERTIES
@given(AMOUNTS, PERCENTS)
def test_a_percentage_and_its_remainder_split_the_whole(amount, percent):
    """A commission (or a discount) and what is left: both within [0, amount]."""
    share = percent_of(amount, percent)
    assert 0 <= share <= amount and 0 <= amount - share <= amount
    assert allocate(amount, [percent, Decimal(100) - percent])[0] == share


@PROPERTIES
@given(AMOUNTS, PERCENTS, st.integers(min_value=0, max_value=10**6))
def test_fees_are_never_negative(amount, percent, fixed):
    fee = processing_fee(amount, percent, fixed)
    assert fee >= fixed >= 0


@PROPERTIES
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_no_money_function_takes_a_float(value):
    calls = [
        lambda: convert(value, "USD", "EUR", Decimal(1), Decimal("0.92")),  # type: ignore[arg-type]
        lambda: convert(100, "USD", "EUR", Decimal(1), value),  # type: ignore[arg-type]
        lambda: percent_of(value, Decimal(5)),  # type: ignore[arg-type]
        lambda: percent_of(100, value),  # type: ignore[arg-type]
        lambda: processing_fee(100, Decimal("2.9"), value),  # type: ignore[arg-type]
        lambda: allocate(100, [value, Decimal(1)]),  # type: ignore[list-item]
        lambda: round_minor(value),  # type: ignore[arg-type]
        lambda: parse_rate(value),
    ]
    for call in calls:
        with pytest.raises((TypeError, RateError)):
            call()


@PROPERTIES
@given(RATES)
def test_rates_from_the_api_are_read_exactly_never_through_float(rate):
    """``0.1`` in the API's JSON is Decimal('0.1'), not 0.1000000000000000055…"""
    body = '{"rates": {"EUR": %s}}' % format(rate, "f")
    rates, refused = decode_rates(body.encode())
    assert rates == {"EUR": rate} and type(rates["EUR"]) is Decimal and refused == []


@PROPERTIES
@given(RATES)
def test_an_owner_rate_string_is_parsed_exactly(rate):
    text = format(rate, "f")
    assert parse_rate(text) == rate
    with pytest.raises(RateError):
        parse_rate("-" + text)


@PROPERTIES
@given(AMOUNTS, CURRENCIES, RATES)
def test_a_quote_pair_converts_with_the_one_function(amount, currency, rate):
    rate = Decimal(1) if currency == "USD" else rate
    source = Source.NATIVE if currency == "USD" else Source.CACHED
    result = apply(amount, NATIVE_USD, Quote(currency, rate, source))
    assert result.amount == convert(amount, "USD", currency, Decimal(1), rate)
    assert (result.rate, result.source) == (rate, source)


@pytest.mark.parametrize("body", [
    b"not json", b"[]", b'{"rates": []}', b'{"rates": {"EUR": "0.9"}}',
    b'{"rates": {"EUR": NaN}}', b'{"rates": {"EUR": Infinity}}', b'{"rates": {"EUR": -1}}',
    b'{"rates": {"EUR": 0}}', b'{"rates": {"EUR": 1e13}}', b'{"rates": {"EUR": true}}',
    b'{"base": "EUR", "rates": {"USD": 1.08, "GBP": 0.85}}', b'{"rates": {"XXX": 1}}',
    b"[" * 100_000,
])
def test_a_garbage_rate_document_is_refused(body):
    with pytest.raises(RateError):
        decode_rates(body)


def test_the_money_modules_have_no_float_in_them():
    """No ``float(...)`` call and no float literal where money or rates are computed."""
    found = []
    for name in ("core/money.py", "core/fx.py", "owner/fx/service.py"):
        for node in ast.walk(ast.parse((ROOT / name).read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, float):
                found.append(f"{name}:{node.lineno}: float literal {node.value}")
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "float":
                found.append(f"{name}:{node.lineno}: float() call")
    assert found == []


def test_the_rate_api_body_is_json_decoded_with_decimals():
    assert json.loads("0.1", parse_float=Decimal) == Decimal("0.1")  # the premise
    rates, _ = decode_rates(b'{"rates": {"EUR": 0.1, "VND": 24500}}')
    assert rates == {"EUR": Decimal("0.1"), "VND": Decimal("24500")}
