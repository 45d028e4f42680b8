"""Both Alembic trees: at head after provisioning, and a full down/up round trip."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from core import migrate
from core.db import autocommit_connection, with_database
from tests.conftest import worker_tag
from tests.integration.test_cli import run_cli

pytestmark = pytest.mark.asyncio


async def test_owner_and_tenant_trees_are_at_head(platform, make_tenant):
    assert await migrate.current(platform["PAYMESH_DATABASE_URL"], "owner") == migrate.head("owner")
    tenant = await make_tenant()
    url = with_database(platform["PAYMESH_DATABASE_URL"],
                        platform["PAYMESH_TENANT_DB_PREFIX"] + tenant.slug.replace("-", "_"))
    assert await migrate.current(url, "tenant") == migrate.head("tenant")


@pytest.mark.parametrize("tree", ["owner", "tenant"])
async def test_downgrade_upgrade_round_trip(pg_url, tree):
    name = f"pmt_{worker_tag()}_roundtrip_{tree}"
    async with autocommit_connection(pg_url) as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = with_database(pg_url, name)
    await migrate.upgrade(url, tree)
    assert await migrate.current(url, tree) == migrate.head(tree)
    await migrate.downgrade(url, tree, "base")
    assert await migrate.current(url, tree) is None
    async with autocommit_connection(url) as conn:
        tables = (await conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))).scalars().all()
    assert set(tables) <= {f"alembic_version_{tree}"}
    await migrate.upgrade(url, tree)
    assert await migrate.current(url, tree) == migrate.head(tree)


async def test_db_upgrade_reports_a_failing_tenant_and_migrates_the_rest(platform, make_tenant):
    good, broken = await make_tenant("good"), await make_tenant("broken")
    broken_url = with_database(platform["PAYMESH_DATABASE_URL"],
                               platform["PAYMESH_TENANT_DB_PREFIX"]
                               + broken.slug.replace("-", "_"))
    good_url = with_database(platform["PAYMESH_DATABASE_URL"],
                             platform["PAYMESH_TENANT_DB_PREFIX"] + good.slug.replace("-", "_"))
    await migrate.downgrade(good_url, "tenant", "base")
    async with autocommit_connection(broken_url) as conn:  # sabotage: a version that never was
        await conn.execute(text("UPDATE alembic_version_tenant SET version_num = 'deadbeef0000'"))
    result = run_cli(["db", "upgrade"], timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert broken.slug in result.stderr
    assert await migrate.current(good_url, "tenant") == migrate.head("tenant")
    async with autocommit_connection(broken_url) as conn:
        await conn.execute(text("UPDATE alembic_version_tenant SET version_num = :v"),
                           {"v": migrate.head("tenant")})


async def test_refunds_and_disputes_are_found_by_payment_through_an_index(platform,
                                                                          make_tenant):
    """What is refundable is computed under the order's lock from the payment's refunds
    and disputes: a look-up by payment must not scan the tenant's whole tables."""
    tenant = await make_tenant("payidx")
    url = with_database(platform["PAYMESH_DATABASE_URL"],
                        platform["PAYMESH_TENANT_DB_PREFIX"] + tenant.slug.replace("-", "_"))
    async with autocommit_connection(url) as conn:
        found = dict((await conn.execute(text(
            "SELECT tablename, indexdef FROM pg_indexes "
            "WHERE tablename IN ('refunds', 'disputes') AND indexname LIKE '%payment_id%'"
        ))).all())
    assert set(found) == {"refunds", "disputes"}, found
    assert all("(payment_id, status)" in d for d in found.values()), found
