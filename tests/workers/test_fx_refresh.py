"""The scheduler's hourly FX refresh: rates stored with their history; a failing rate API
is counted and logged, never raised."""

from __future__ import annotations

from decimal import Decimal

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from core.runtime import get_runtime
from tests.fx_api import fx_runtime, rate_api  # noqa: F401 - fixtures
from workers.scheduler import JOBS, run_job

pytestmark = pytest.mark.asyncio

REFRESH = next(job for job in JOBS if job.name == "refresh_fx_rates")


async def stored() -> list:
    async with get_runtime().owner_session() as session:
        return list((await session.execute(text(
            "SELECT currency, rate, fetched_at FROM fx_rates WHERE source = 'api' "
            "ORDER BY currency"))).all())


async def test_the_hourly_job_stores_every_rate(fx_runtime, rate_api):
    assert REFRESH.every_seconds == 3600 and REFRESH.per_tenant is False
    result = await run_job(fx_runtime, REFRESH)
    assert result == {"job": "refresh_fx_rates", "count": 2, "failed": []}
    first = await stored()
    assert [(c, r) for c, r, _ in first] == [("EUR", Decimal("0.91")), ("VND", Decimal("25000"))]

    rate_api.body = {"rates": {"EUR": 0.9, "VND": 25100.25}}
    await run_job(fx_runtime, REFRESH)
    second = await stored()
    assert [(c, r) for c, r, _ in second] == [("EUR", Decimal("0.9")),
                                              ("VND", Decimal("25100.25"))]
    assert second[0][2] > first[0][2]
    async with fx_runtime.owner_session() as session:
        history = (await session.execute(text(
            "SELECT rate FROM fx_rate_history WHERE currency = 'VND' AND source = 'api' "
            "ORDER BY id DESC LIMIT 2"))).scalars().all()
    assert history == [Decimal("25100.25"), Decimal("25000")]


@pytest.mark.parametrize(("mode", "reason"), [("down", "unreachable"), ("slow", "timeout"),
                                              ("garbage", "garbage")])
async def test_a_failing_api_is_counted_not_raised(fx_runtime, rate_api, mode, reason):
    await run_job(fx_runtime, REFRESH)  # something stored first
    before = await stored()
    rate_api.set(mode)
    counted = REGISTRY.get_sample_value("paymesh_fx_api_failures_total",
                                        {"reason": reason}) or 0.0
    result = await run_job(fx_runtime, REFRESH)
    assert result == {"job": "refresh_fx_rates", "count": 0, "failed": []}
    assert REGISTRY.get_sample_value("paymesh_fx_api_failures_total",
                                     {"reason": reason}) == counted + 1
    assert await stored() == before  # the last known rates stay


async def test_without_a_rate_api_the_job_does_nothing(fx_runtime, rate_api):
    import dataclasses

    fx_runtime.settings = dataclasses.replace(fx_runtime.settings, fx_api_url=None)
    assert (await run_job(fx_runtime, REFRESH))["count"] == 0
    assert rate_api.calls == 0 and await stored() == []
