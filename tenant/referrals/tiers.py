"""Commission tiers: by the referrer's referred revenue in US cents, a rate in percent.

The tenant's table lives in its settings (``commission_tiers``, T20); without one the
defaults apply: bronze ≥ $0 → 20 %, silver ≥ $500 → 25 %, gold ≥ $1,500 → 30 %,
platinum ≥ $5,000 → 35 %. A table is valid when it is non-empty, starts at 0, its
thresholds strictly ascend, its names are distinct and its rates are percents 0–100 with
at most two decimals (the ``numeric(5, 2)`` a commission keeps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from typing import Any

from core.errors import ValidationError
from core.limits import INT64_MAX

MAX_TIERS = 20
NAME_LEN = 32
_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    #: The referred revenue (US cents, paid minus refunded) from which the tier applies.
    min_referred_revenue_usd: int
    rate_percent: Decimal

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "min_referred_revenue_usd": self.min_referred_revenue_usd,
                "rate_percent": str(self.rate_percent)}


DEFAULT_TIERS: tuple[Tier, ...] = (
    Tier("bronze", 0, Decimal(20)),
    Tier("silver", 50_000, Decimal(25)),
    Tier("gold", 150_000, Decimal(30)),
    Tier("platinum", 500_000, Decimal(35)),
)


def tier_for(revenue_usd: int, tiers: Sequence[Tier]) -> Tier:
    """The highest tier whose threshold ``revenue_usd`` reaches (tables start at 0)."""
    found = tiers[0]
    for tier in tiers:
        if revenue_usd >= tier.min_referred_revenue_usd:
            found = tier
    return found


def _refuse(message: str) -> ValidationError:
    return ValidationError(f"commission_tiers: {message}", param="commission_tiers")


def _rate(value: object, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise _refuse(f"{where}.rate_percent must be a decimal string such as \"25\" or "
                      "\"12.5\"")
    try:
        rate = Decimal(value)
        ok = rate.is_finite() and Decimal(0) <= rate <= Decimal(100) \
            and rate == rate.quantize(_CENT)
    except InvalidOperation:
        ok = False
    if not ok:
        raise _refuse(f"{where}.rate_percent must be a percent from 0 to 100 with at most "
                      "2 decimals")
    return rate


def parse(raw: object) -> tuple[Tier, ...]:
    """A tier table from its JSON form (settings input or the stored column), or a 400
    naming ``commission_tiers``."""
    if not isinstance(raw, list) or not raw:
        raise _refuse("give a non-empty list of {name, min_referred_revenue_usd, "
                      "rate_percent}")
    if len(raw) > MAX_TIERS:
        raise _refuse(f"at most {MAX_TIERS} tiers")
    tiers: list[Tier] = []
    for index, item in enumerate(raw):
        where = f"[{index}]"
        if not isinstance(item, dict) or set(item) != {"name", "min_referred_revenue_usd",
                                                       "rate_percent"}:
            raise _refuse(f"{where} must have exactly name, min_referred_revenue_usd and "
                          "rate_percent")
        name, threshold = item["name"], item["min_referred_revenue_usd"]
        if not isinstance(name, str) or not name.strip() or len(name) > NAME_LEN:
            raise _refuse(f"{where}.name must be 1 to {NAME_LEN} characters")
        if isinstance(threshold, bool) or not isinstance(threshold, int) \
                or not 0 <= threshold <= INT64_MAX:
            raise _refuse(f"{where}.min_referred_revenue_usd must be a whole number of US "
                          "cents, 0 or more")
        tiers.append(Tier(name.strip(), threshold, _rate(item["rate_percent"], where)))
    if tiers[0].min_referred_revenue_usd != 0:
        raise _refuse("the first tier must start at 0")
    for before, after in pairwise(tiers):
        if after.min_referred_revenue_usd <= before.min_referred_revenue_usd:
            raise _refuse("thresholds must be strictly ascending")
    if len({t.name for t in tiers}) != len(tiers):
        raise _refuse("tier names must be distinct")
    return tuple(tiers)


def of_settings(stored: list[dict[str, Any]] | None) -> tuple[Tier, ...]:
    """The tenant's table from its settings column (``None``: the defaults)."""
    return DEFAULT_TIERS if stored is None else parse(stored)
