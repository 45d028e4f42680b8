"""The tenant engine registry keeps total connections under its cap."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from core.db import autocommit_connection, with_database
from core.engines import TenantEngineRegistry
from tests.conftest import worker_tag

pytestmark = pytest.mark.asyncio


async def test_connection_cap_holds_across_many_databases(pg_url):
    names = [f"pmt_{worker_tag()}_cap_{i}" for i in range(12)]
    async with autocommit_connection(pg_url) as conn:
        for name in names:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    registry = TenantEngineRegistry(max_connections=4, pool_size=2, idle_seconds=0)
    peak = 0

    async def use(name: str) -> int:
        nonlocal peak
        async with registry.session(with_database(pg_url, name)) as session:
            peak = max(peak, registry.open_connections())
            await asyncio.sleep(0.01)
            return await session.scalar(text("SELECT 1"))

    results = await asyncio.gather(*[use(names[i % len(names)]) for i in range(120)])
    assert results == [1] * 120
    assert 0 < peak <= 4
    assert registry.open_connections() <= 4
    async with autocommit_connection(pg_url) as conn:
        on_server = await conn.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname LIKE :p"),
            {"p": f"pmt_{worker_tag()}_cap_%"})
    assert on_server <= 4
    assert await registry.prune() >= 0
    await registry.dispose_all()
    assert registry.engine_count() == 0


async def test_a_returning_tenant_reuses_its_engine(pg_url):
    names = [f"pmt_{worker_tag()}_reuse_{i}" for i in range(3)]
    async with autocommit_connection(pg_url) as conn:
        for name in names:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    urls = [with_database(pg_url, n) for n in names]
    registry = TenantEngineRegistry(max_connections=1, pool_size=1, idle_seconds=60)
    engines = []
    for name, url in zip(names + names[:1], urls + urls[:1], strict=True):
        async with registry.connect(url) as conn:  # a newcomer retires the last one (cap 1)
            assert await conn.scalar(text("SELECT current_database()")) == name
            engines.append(conn.engine)
        assert registry.open_connections() <= 1
    assert engines[3] is engines[0]  # the same engine object came back from the cold set
    assert engines[0].sync_engine._compiled_cache is engines[1].sync_engine._compiled_cache
    await registry.dispose_all()
