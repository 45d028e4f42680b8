from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from core.money import CURRENCIES

#: A rate as the owner sends it: a decimal string (``"0.92"``), or ``null`` to remove the
#: override. JSON numbers are refused (a float cannot say ``0.1`` exactly).
RateText = Annotated[str, msgspec.Meta(max_length=40, examples=["0.92"])]


class FxRatesIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``PUT /v1/owner/fx-rates``: manual overrides, units of the currency per 1 USD."""

    rates: Annotated[dict[Annotated[str, msgspec.Meta(max_length=8)], RateText | None],
                     msgspec.Meta(min_length=1, max_length=len(CURRENCIES))]


class FxRateOut(msgspec.Struct, kw_only=True):
    currency: str
    #: Units of ``currency`` per 1 USD, a decimal string.
    rate: str
    #: ``manual``, ``cached`` (fetched within the TTL), ``expired`` or ``fallback``.
    source: Literal["manual", "cached", "expired", "fallback"]
    #: When the rate was fetched or set; ``null`` for a configured fallback.
    fetched_at: datetime | None


class FxRatesOut(msgspec.Struct, kw_only=True):
    base: Literal["USD"]
    rates: list[FxRateOut]
