"""``GET /v1/owner/reports/platform`` (O7)."""

from __future__ import annotations

import time

from litestar import Controller, get
from litestar.params import QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from core.metrics import REPORT_DURATION
from core.period import Period
from core.runtime import Runtime
from owner.reports import service
from owner.reports.schemas import PlatformReport


class PlatformReportController(Controller):
    path = "/v1/owner/reports"
    tags = ["owner: reports"]

    @get("/platform")
    async def platform(self, owner_db: AsyncSession, runtime: Runtime,
                       start: str | None = QueryParameter(name="from", default=None),
                       end: str | None = QueryParameter(name="to", default=None),
                       currency: str = "USD") -> PlatformReport:
        """Every tenant's orders paid in the period (`from` inclusive, `to` exclusive; ISO
        dates or datetimes) and their gross, normalized to `currency` (each tenant's
        currency groups converted once; rates in `fx`). Tenant databases are read a few at
        a time within the tenant connection cap. See docs/reports.md."""
        started = time.perf_counter()
        report = await service.build(owner_db, runtime, Period.parse(start, end), currency)
        REPORT_DURATION.labels("platform", "-").observe(time.perf_counter() - started)
        return report
