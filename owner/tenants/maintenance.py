"""Fleet maintenance: migrate everything, rotate the master key."""

from __future__ import annotations

import logging

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from sqlalchemy import select

from core import migrate
from core.crypto import WrappedKey
from core.runtime import Runtime
from owner.tenants import templates
from owner.tenants.models import DbCluster, Tenant
from owner.tenants.service import ensure_default_cluster, forget_cached_tenants, tenant_db_url

log = logging.getLogger(__name__)


async def upgrade_all(runtime: Runtime) -> list[tuple[str, str]]:
    """Owner DB, then each server's template, then every tenant; returns the failures.

    One tenant failing does not stop the others.
    """
    settings = runtime.settings
    await migrate.upgrade(settings.database_url, "owner")  # type: ignore[arg-type]
    async with runtime.owner_session() as session:
        await ensure_default_cluster(session, settings.database_url)  # type: ignore[arg-type]
        clusters = list((await session.scalars(select(DbCluster))).all())
        tenants = [(t.slug, tenant_db_url(t)) for t in (await session.scalars(
            select(Tenant).where(Tenant.status != "provisioning").order_by(Tenant.slug))).all()]
    failures: list[tuple[str, str]] = []
    for cluster in clusters:
        try:
            await templates.ensure_template(cluster.url, settings.template_db, force=True)
        except Exception as exc:  # noqa: BLE001 - reported, not fatal for other servers
            failures.append((f"template@{cluster.name}", str(exc).splitlines()[0]))
    columns = (TextColumn("tenant databases"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.description}"))
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("", total=len(tenants))
        for slug, url in tenants:
            progress.update(task, description=slug)
            try:
                await migrate.upgrade(url, "tenant")
            except Exception as exc:  # noqa: BLE001 - collected and reported at the end
                log.error("tenant %s failed to migrate: %s", slug, exc)
                failures.append((slug, str(exc).splitlines()[0] if str(exc) else repr(exc)))
            progress.advance(task)
    return failures


async def rotate_master_key(runtime: Runtime) -> int:
    """Rewrap every tenant's data key under the newest master key; returns how many."""
    count = 0
    async with runtime.owner_session() as session:
        for tenant in (await session.scalars(select(Tenant).with_for_update(of=Tenant))).all():
            old = WrappedKey(tenant.master_key_id, tenant.wrapped_data_key)
            new = runtime.keyring.rewrap(old, tenant_id=str(tenant.id))
            if new != old:
                tenant.master_key_id = new.master_key_id
                tenant.wrapped_data_key = new.blob
                count += 1
    forget_cached_tenants()
    return count
