"""The revenue report's per-day roll-up (tenant migration 0017, ``tenant/reports/rollup.py``)
through HTTP: before and after a roll-up, after changes to orders of rolled-up days, over
periods with partial first and last days, the orders source answers exactly what the live
scan answers (the same report with nothing rolled up), for every ``group_by``; paying an
order today marks nothing; the roll-up run twice changes nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from core.sql import sql
from tenant.reports.rollup import Rolled, roll_up
from tests.integration.test_orders_support import gateway, tenant_db  # noqa: F401 - fixture
from tests.integration.test_refunds_api import confirm, paid_order, refund
from tests.reports_check import FROM, GROUPINGS, TO, assert_reports_agree
from tests.workers.helpers import sandbox_shop

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("gateway")]

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _at(days_ago: int, hour: int = 0, minute: int = 0) -> datetime:
    return TODAY - timedelta(days=days_ago) + timedelta(hours=hour, minutes=minute)


#: Periods to compare: everything; one with partial first and last days; one of whole
#: days only; one within a single day.
PERIODS = (
    (FROM, TO),
    (_at(5, 12).isoformat(), _at(3, 6).isoformat()),
    (_at(5).isoformat(), _at(2).isoformat()),
    (_at(5, 9).isoformat(), _at(5, 23, 45).isoformat()),
)


async def _fetch(slug: str, statement: str, **params: Any) -> list[Any]:
    async with tenant_db(slug) as session:
        return list((await session.execute(text(statement), params)).all())


async def _execute(slug: str, statement: str, **params: Any) -> None:
    async with tenant_db(slug) as session:
        await session.execute(text(statement), params)


async def _roll_up(slug: str) -> Rolled:
    """What the scheduler's job runs, in a transaction of its own."""
    async with tenant_db(slug) as session:
        return await roll_up(await sql(session))


async def _reports(client: Any, tenant: Any) -> dict[tuple[str, str, str], Any]:
    answers = {}
    for start, end in PERIODS:
        for group_by in GROUPINGS:
            answer = await client.get("/v1/reports/revenue", headers=tenant.headers, params={
                "from": start, "to": end, "group_by": group_by, "currency": "USD"})
            assert answer.status_code == 200, answer.text
            answers[(start, end, group_by)] = answer.json()
    return answers


async def assert_exact(client: Any, tenant: Any) -> dict[tuple[str, str, str], Any]:
    """Every period and grouping answered as the live scan answers it: the same requests
    again with the roll-up's state set to "nothing rolled up", then put back."""
    served = await _reports(client, tenant)
    [(rolled,)] = await _fetch(tenant.slug, "SELECT rolled_until FROM report_rollup_state")
    await _execute(tenant.slug, "UPDATE report_rollup_state SET rolled_until = NULL")
    try:
        live = await _reports(client, tenant)
    finally:
        await _execute(tenant.slug, "UPDATE report_rollup_state SET rolled_until = :d",
                       d=rolled)
    for key, report in served.items():
        assert report == live[key], (key, report, live[key])
    return served


async def _dirty(slug: str) -> list[date]:
    return [r[0] for r in await _fetch(slug, "SELECT day FROM report_dirty_days ORDER BY 1")]


async def _days(slug: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await _fetch(slug, "SELECT * FROM report_days ORDER BY 1, 2, 3")]


async def test_the_rollup_answers_what_the_live_scan_answers(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "rollup")
    made = [(await paid_order(client, tenant, [{"description": "Item", "quantity": 1,
                                                "unit_amount": 1_000 * (i + 1)}]))[0]
            for i in range(5)]
    # (e) paying an order today marks no day: the trigger's WHEN is false on that path
    assert await _dirty(tenant.slug) == []
    # four of them paid on earlier days (the last stays today's), one exactly at midnight
    moved = {0: _at(5, 10), 1: _at(5, 23, 30), 2: _at(3), 3: _at(2, 12)}
    for i, paid_at in moved.items():
        await _execute(tenant.slug, "UPDATE orders SET paid_at = :t WHERE id = :id",
                       t=paid_at, id=made[i]["id"])
    # moving an order into the past is a change to a past day: marked dirty
    assert await _dirty(tenant.slug) == sorted({t.date() for t in moved.values()})

    # (a) nothing rolled up yet: all live
    before = await assert_exact(client, tenant)
    await assert_reports_agree(client, tenant)

    # (b) rolled up to today: the closed days come from report_days, exactly
    rolled = await _roll_up(tenant.slug)
    assert rolled.rolled_until == TODAY.date()
    assert rolled.days == (TODAY - _at(5)).days  # from the first paid day up to yesterday
    assert await _dirty(tenant.slug) == []
    assert {d[0] for d in await _days(tenant.slug)} == {t.date() for t in moved.values()}
    after = await assert_exact(client, tenant)
    assert after == before  # (d) the partial-day periods included
    await assert_reports_agree(client, tenant)
    # … and they are read from there: a (deliberately) wrong rolled row shows
    await _execute(tenant.slug, "UPDATE report_days SET gross = gross + 1 WHERE day = :d",
                   d=_at(3).date())
    tampered = await _reports(client, tenant)
    assert (tampered[(FROM, TO, "currency")]["totals"]["gross"]
            == after[(FROM, TO, "currency")]["totals"]["gross"] + 1)
    await _execute(tenant.slug, "UPDATE report_days SET gross = gross - 1 WHERE day = :d",
                   d=_at(3).date())
    # (e) today's order is in the report, read live
    assert after[(FROM, TO, "currency")]["totals"]["orders"] == 5
    assert TODAY.date() not in {d[0] for d in await _days(tenant.slug)}

    # (f) a second run recomputes nothing and changes nothing
    rows = await _days(tenant.slug)
    assert await _roll_up(tenant.slug) == Rolled(days=0, rolled_until=TODAY.date())
    assert await _days(tenant.slug) == rows

    # (c) a refund on an order of a rolled-up day: the day is dirty, read live, exact
    await confirm(client, tenant, await refund(client, tenant, made[0]["id"], amount=300))
    assert await _dirty(tenant.slug) == [_at(5).date()]
    refunded = await assert_exact(client, tenant)
    assert refunded[(FROM, TO, "currency")]["totals"]["refunds"] == 300
    await assert_reports_agree(client, tenant)
    # … a lost dispute and a fee settled later (as settlement writes them) on another day
    await _execute(tenant.slug, "UPDATE orders SET dispute_losses = dispute_losses + 1500, "
                   "provider_fee = COALESCE(provider_fee, 0) + 7 WHERE id = :id",
                   id=made[3]["id"])
    assert await _dirty(tenant.slug) == [_at(5).date(), _at(2).date()]
    changed = await assert_exact(client, tenant)
    totals = changed[(FROM, TO, "currency")]["totals"]
    assert totals["disputes_lost"] == 1500
    assert totals["provider_fees"] == refunded[(FROM, TO, "currency")]["totals"][
        "provider_fees"] + 7
    # a change to a column the report does not read marks nothing
    await _execute(tenant.slug, "UPDATE orders SET metadata = '{\"k\": 1}' WHERE id = :id",
                   id=made[1]["id"])
    assert await _dirty(tenant.slug) == [_at(5).date(), _at(2).date()]

    # the next roll-up recomputes the dirty days only; exact again
    assert await _roll_up(tenant.slug) == Rolled(days=2, rolled_until=TODAY.date())
    assert await _dirty(tenant.slug) == []
    assert await assert_exact(client, tenant) == changed
    # and what it keeps is what a roll-up from scratch computes
    rows = await _days(tenant.slug)
    await _execute(tenant.slug, "UPDATE report_rollup_state SET rolled_until = NULL")
    await _roll_up(tenant.slug)
    assert await _days(tenant.slug) == rows

    # a change to an order paid today marks nothing: today is never rolled up
    await _execute(tenant.slug, "UPDATE orders SET provider_fee = COALESCE(provider_fee, 0) + 1 WHERE id = :id",
                   id=made[4]["id"])
    assert await _dirty(tenant.slug) == []


async def test_the_roll_up_job_runs_for_every_tenant(client, make_tenant):
    from core.runtime import get_runtime
    from workers.scheduler import JOBS, run_job

    tenant = await sandbox_shop(client, make_tenant, "rollupjob")
    made, _ = await paid_order(client, tenant)
    await _execute(tenant.slug, "UPDATE orders SET paid_at = :t WHERE id = :id",
                   t=_at(1, 8), id=made["id"])
    job = next(j for j in JOBS if j.name == "roll_up_reports")
    assert job.every_seconds == 3600
    result = await run_job(get_runtime(), job)
    assert tenant.slug not in [slug for slug, _ in result["failed"]], result
    [(rolled,)] = await _fetch(tenant.slug, "SELECT rolled_until FROM report_rollup_state")
    assert rolled == TODAY.date()
    assert [d[0] for d in await _days(tenant.slug)] == [_at(1).date()]
    await assert_exact(client, tenant)


async def test_a_change_the_roll_up_cannot_see_yet_keeps_its_day_dirty(client, make_tenant):
    """The race the dirty markers' locks close. A day is already dirty; a second change
    to one of its orders is in flight (not committed) while the roll-up runs. The roll-up
    must not clear that day's marker and roll the day up without the change: the change
    holds the marker (``FOR KEY SHARE``), the roll-up skips markers it cannot take, and
    once the change commits the day is still read live — exact."""
    tenant = await sandbox_shop(client, make_tenant, "rollrace")
    made = [(await paid_order(client, tenant))[0] for _ in range(2)]
    for i, paid_at in enumerate((_at(2, 10), _at(2, 11))):
        await _execute(tenant.slug, "UPDATE orders SET paid_at = :t WHERE id = :id",
                       t=paid_at, id=made[i]["id"])
    await _roll_up(tenant.slug)
    assert await _dirty(tenant.slug) == []
    # a first change, committed: the day is dirty
    await _execute(tenant.slug, "UPDATE orders SET provider_fee = COALESCE(provider_fee, 0) "
                   "+ 1 WHERE id = :id", id=made[0]["id"])
    assert await _dirty(tenant.slug) == [_at(2).date()]
    # a second change, in flight while the roll-up runs and commits
    async with tenant_db(tenant.slug) as in_flight:
        await in_flight.execute(text(
            "UPDATE orders SET dispute_losses = dispute_losses + 500 WHERE id = :id"),
            {"id": made[1]["id"]})
        rolled = await _roll_up(tenant.slug)
        assert rolled.days == 0  # the held marker was skipped, the day not recomputed
        assert await _dirty(tenant.slug) == [_at(2).date()]
    served = await assert_exact(client, tenant)
    assert served[(FROM, TO, "currency")]["totals"]["disputes_lost"] == 500
    # the next roll-up takes the marker, and the rolled day has both changes
    assert (await _roll_up(tenant.slug)).days == 1
    assert await _dirty(tenant.slug) == []
    assert await assert_exact(client, tenant) == served
