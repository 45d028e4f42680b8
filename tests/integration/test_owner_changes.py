"""While an API process watches the owner database, its tenant and key caches live long,
and a suspension or revocation made by another process still arrives within a poll."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from sqlalchemy import text

from core.db import autocommit_connection, make_engine
from core.runtime import Runtime
from core.tenancy import hash_key
from owner import changes
from owner.keys import service as keys
from owner.tenants import service as tenants

pytestmark = pytest.mark.asyncio


async def _owner_sql(platform, statement: str, **params: object) -> None:  # noqa: ANN001
    """A change made elsewhere: straight in the owner database."""
    async with autocommit_connection(platform["PAYMESH_DATABASE_URL"]) as conn:
        await conn.execute(text(statement), params)


async def _until(predicate, seconds: float = 3.0) -> None:  # noqa: ANN001
    """Wait for ``predicate``; 3 s is shorter than the caches live even when unwatched,
    so only a poll can have brought a change that fast."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "change not seen in time"
        await asyncio.sleep(0.05)


@pytest.fixture
def fast_polls(monkeypatch):  # noqa: ANN001, ANN201
    monkeypatch.setattr(changes, "POLL_SECONDS", 0.1)


@pytest.mark.usefixtures("fast_polls")
async def test_changes_elsewhere_arrive_while_caches_live_long(client, make_tenant, platform,
                                                               app):
    runtime: Runtime = app.state.runtime
    tenant = await make_tenant()
    watcher = asyncio.create_task(changes.watch(runtime))
    try:
        await _until(lambda: _is(tenants._contexts.ttl, changes.WATCHED_SECONDS))
        listed = await client.get("/v1/providers", headers=tenant.headers)
        assert listed.status_code == 200  # tenant and key now cached for minutes

        await _owner_sql(platform, "UPDATE tenants SET status = 'suspended', "
                         "updated_at = now() WHERE slug = :s", s=tenant.slug)

        async def refused() -> bool:
            response = await client.get("/v1/providers", headers=tenant.headers)
            return response.status_code == 403
        await _until(refused)

        await _owner_sql(platform, "UPDATE tenants SET status = 'active', "
                         "updated_at = now() WHERE slug = :s", s=tenant.slug)
        await _until(lambda: _status(client, tenant, 200))
        await _owner_sql(platform, "UPDATE api_keys SET revoked_at = now() "
                         "WHERE key_hash = :h", h=hash_key(tenant.key))
        await _until(lambda: _status(client, tenant, 401))
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    assert tenants._contexts.ttl == tenants.CACHE_SECONDS  # back to short when not watched
    assert keys._cache.ttl == keys.CACHE_SECONDS


@pytest.mark.usefixtures("fast_polls")
async def test_an_unreadable_owner_database_keeps_the_caches_short(app):
    from core.embedded import free_port

    engine = make_engine(f"postgresql://nobody@127.0.0.1:{free_port()}/none", pool_size=1)
    runtime = dataclasses.replace(app.state.runtime, owner_engine=engine)
    watcher = asyncio.create_task(changes.watch(runtime))
    try:
        await asyncio.sleep(0.5)
        assert tenants._contexts.ttl == tenants.CACHE_SECONDS
        assert keys._cache.ttl == keys.CACHE_SECONDS
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await engine.dispose()


async def _is(value: object, expected: object) -> bool:
    return value == expected


async def _status(client, tenant, code: int) -> bool:  # noqa: ANN001
    return (await client.get("/v1/providers", headers=tenant.headers)).status_code == code
