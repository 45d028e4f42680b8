from __future__ import annotations

from litestar import Controller, get, put
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.fx import BASE
from core.money import plain_decimal
from core.runtime import Runtime
from owner.fx import service
from owner.fx.schemas import FxRateOut, FxRatesIn, FxRatesOut


async def _rates(owner_db: AsyncSession, runtime: Runtime) -> FxRatesOut:
    quotes = await service.current_rates(owner_db, runtime.settings)
    return FxRatesOut(base=BASE, rates=[
        FxRateOut(currency=q.currency, rate=str(plain_decimal(q.rate)), source=q.source.value,
                  fetched_at=q.fetched_at)  # type: ignore[arg-type]
        for q in quotes])


class FxRateController(Controller):
    path = "/v1/owner/fx-rates"
    tags = ["owner: fx"]

    @get("/")
    async def list_rates(self, owner_db: AsyncSession, runtime: Runtime) -> FxRatesOut:
        """Every known rate (units per 1 USD) and the layer a conversion takes it from
        now, without asking the rate API."""
        return await _rates(owner_db, runtime)

    @put("/")
    async def put_rates(self, owner_db: AsyncSession, runtime: Runtime, actor: Actor,
                        data: FxRatesIn) -> FxRatesOut:
        """Set manual overrides (``"EUR": "0.92"``) or remove them (``"EUR": null``); all
        entries are checked first, a bad one changes nothing."""
        await service.set_overrides(owner_db, data.rates, actor)
        return await _rates(owner_db, runtime)
