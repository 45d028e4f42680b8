"""The scheduler: one leader at a time, every tenant visited, failures contained."""

from __future__ import annotations


import pytest
from sqlalchemy import text

from core.db import autocommit_connection, with_database
from core.redis import get_redis
from tests.integration.test_cli import run_cli
from workers.scheduler import LEADER_KEY, JOBS, Job, Leadership, run_job

pytestmark = pytest.mark.asyncio


async def test_only_one_scheduler_leads(client):
    redis = get_redis()
    await redis.delete(LEADER_KEY)
    first, second = Leadership(redis), Leadership(redis)
    assert await first.hold() is True
    assert await second.hold() is False
    assert await first.hold() is True  # renewal by the holder
    await first.release()
    assert await second.hold() is True
    assert await first.hold() is False
    await second.release()


async def test_a_failing_tenant_does_not_stop_the_others(client, make_tenant, platform):
    from core.runtime import get_runtime

    healthy, broken = await make_tenant("ok"), await make_tenant("gone")
    seen: list[str] = []

    async def probe(runtime, tenant):  # noqa: ANN001, ANN202
        async with runtime.tenant_session(tenant.db_url) as session:
            await session.execute(text("SELECT 1 FROM webhook_events LIMIT 1"))
        seen.append(tenant.slug)
        return 1

    db = platform["PAYMESH_TENANT_DB_PREFIX"] + broken.slug.replace("-", "_")
    async with autocommit_connection(platform["PAYMESH_DATABASE_URL"]) as conn:
        await conn.execute(text(f'ALTER DATABASE "{db}" RENAME TO "{db}_moved"'))
    try:
        result = await run_job(get_runtime(), Job("probe", 60, probe))
    finally:
        await get_runtime().tenants.forget(with_database(platform["PAYMESH_DATABASE_URL"], db))
        async with autocommit_connection(platform["PAYMESH_DATABASE_URL"]) as conn:
            await conn.execute(text(f'ALTER DATABASE "{db}_moved" RENAME TO "{db}"'))
    assert healthy.slug in seen and broken.slug not in seen
    failed = [slug for slug, _ in result["failed"]]  # other tests may leave tenants on
    assert broken.slug in failed and healthy.slug not in failed  # servers they stopped


async def test_scheduler_once_runs_every_job(platform):
    import asyncio

    result = await asyncio.to_thread(run_cli, ["scheduler", "--once"], None, 180)
    assert result.returncode == 0, result.stderr
    for job in JOBS:
        assert f"{job.name}:" in result.stdout
