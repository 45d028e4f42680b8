"""Converting a report's groups: one quote per currency, looked up once per report, so
every group of the report is converted with the same rates (and the rates are listed with
it)."""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from core.fx import Quote, apply
from core.money import plain_decimal
from owner.fx.service import quote


class FxUsed(msgspec.Struct, kw_only=True):
    """A rate a report used: units of ``currency`` per 1 USD, and the layer it came from."""

    currency: str
    rate: str
    source: str


@dataclass
class Converter:
    """Converts minor units of any loaded currency into ``target`` (rounded once each)."""

    target: str
    quotes: dict[str, Quote] = field(default_factory=dict)

    async def load(self, currencies: set[str]) -> None:
        """Quote ``currencies`` and the target (a 422 ``fx_rate_unavailable`` for one
        without a rate in any layer)."""
        for currency in sorted(currencies | {self.target}):
            if currency not in self.quotes:
                self.quotes[currency] = await quote(currency)

    def __call__(self, amount: int, currency: str) -> int:
        return apply(amount, self.quotes[currency], self.quotes[self.target]).amount

    def used(self) -> list[FxUsed]:
        return [FxUsed(currency=c, rate=str(plain_decimal(q.rate)), source=q.source.value)
                for c, q in sorted(self.quotes.items())]
