"""Fleet maintenance: migrate everything, rotate the master key."""

from __future__ import annotations

import logging

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from sqlalchemy import select

from core import migrate
from core.crypto import WrappedKey
from core.runtime import Runtime
from owner.tenants import servers, templates
from owner.tenants.models import DbCluster, Tenant
from owner.tenants.naming import database_names
from owner.tenants.service import ensure_default_cluster, forget_cached_tenants, tenant_db_url

log = logging.getLogger(__name__)


async def upgrade_all(runtime: Runtime) -> list[tuple[str, str]]:
    """Owner DB, then each server's template, then every tenant; returns the failures.

    One tenant failing does not stop the others, nor does a server that does not answer:
    it is reported once (``cluster <name>``) and its tenants are left for the next run.
    """
    settings = runtime.settings
    await migrate.upgrade(settings.database_url, "owner")  # type: ignore[arg-type]
    async with runtime.owner_session() as session:
        await ensure_default_cluster(session, settings.database_url)  # type: ignore[arg-type]
        names = await database_names(session, settings)
        clusters = list((await session.scalars(select(DbCluster).order_by(DbCluster.name))).all())
        rows = (await session.scalars(
            select(Tenant).where(Tenant.status != "provisioning").order_by(Tenant.slug))).all()
        tenants = [(t.slug, t.cluster.name, tenant_db_url(t)) for t in rows]
    failures: list[tuple[str, str]] = []
    broken: set[str] = set()
    for cluster in clusters:
        try:
            await servers.reach(cluster.url)
            await templates.ensure_template(cluster.url, names.template, force=True)
        except Exception as exc:  # noqa: BLE001 - reported, not fatal for other servers
            broken.add(cluster.name)
            skipped = sum(1 for t in tenants if t[1] == cluster.name)
            reason = getattr(exc, "message", None) or str(exc).splitlines()[0]
            log.error("cluster %s failed: %s", cluster.name, reason)
            failures.append((f"cluster {cluster.name}",
                             f"{reason} ({skipped} tenant database(s) not migrated)"))
    tenants = [(slug, url) for slug, name, url in tenants if name not in broken]
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
