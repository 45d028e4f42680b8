"""``GET /v1/reports/revenue`` and ``GET /v1/reports/metrics`` (T17, SPEC 3a)."""

from __future__ import annotations

import time

from litestar import Controller, get
from litestar.params import QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from core.metrics import REPORT_DURATION
from core.period import Period
from core.sql import sql
from tenant.reports import metrics, revenue
from tenant.reports.revenue import GroupBy, OperatingCosts, Source, choice
from tenant.reports.schemas import MetricsReport, RevenueReport
from tenant.settings import service as settings

_FROM = QueryParameter(name="from", default=None, description=(
    "Start, inclusive: an ISO date (UTC midnight) or datetime; default 30 days before `to`."))
_TO = QueryParameter(name="to", default=None, description=(
    "End, exclusive: an ISO date (UTC midnight) or datetime; default now."))


class ReportController(Controller):
    path = "/v1/reports"
    tags = ["tenant: reports"]

    @get("/revenue")
    async def revenue(self, tenant_db: AsyncSession, start: str | None = _FROM,
                      end: str | None = _TO, group_by: str = "currency",
                      currency: str = "USD", source: str = "orders") -> RevenueReport:
        """Revenue of the orders paid in the period, in the reporting `currency`: summed in
        SQL per original currency and group (`provider`, UTC `day` or `currency`), each
        group converted once (the rates used are in `fx`). `source=ledger` derives the same
        figures from the ledger. See docs/reports.md."""
        started = time.perf_counter()
        period = Period.parse(start, end)
        by, src = choice(GroupBy, group_by, "group_by"), choice(Source, source, "source")
        tenant = await settings.load(tenant_db)
        report = await revenue.build(
            await sql(tenant_db), period, group_by=by, currency=currency, source=src,
            costs=OperatingCosts(tenant.operating_costs_monthly,
                                 tenant.operating_costs_currency))
        REPORT_DURATION.labels("revenue", src.value).observe(time.perf_counter() - started)
        return report

    @get("/metrics")
    async def metrics(self, tenant_db: AsyncSession, start: str | None = _FROM,
                      end: str | None = _TO) -> MetricsReport:
        """Payment success, checkout abandonment, refund and dispute rates (fractions as
        decimal strings), reservations and webhook inbox health over the period."""
        started = time.perf_counter()
        report = await metrics.build(await sql(tenant_db), Period.parse(start, end))
        REPORT_DURATION.labels("metrics", "-").observe(time.perf_counter() - started)
        return report
