"""Tenant registry and provisioning (O3) on several database servers (O4)."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import caches
from core.audit import Actor, record
from core.db import after_commit, with_database
from core.errors import Conflict, NotFound, ServiceUnavailable, ValidationError
from core.money import normalize_currency
from core.runtime import Runtime
from core.sql import autocommit_sql
from core.tenancy import TenantContext
from owner.audit.models import OwnerAuditLog
from owner.keys import service as keys
from owner.tenants import servers, templates
from owner.tenants.models import DbCluster, Tenant
from owner.tenants.naming import database_names

log = logging.getLogger(__name__)
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$")
#: Seconds a looked-up tenant is cached, unless :mod:`owner.changes` watches for changes.
_contexts = caches.TENANT_CONTEXTS
CACHE_SECONDS = _contexts.ttl


def tenant_db_url(tenant: Tenant) -> str:
    return with_database(tenant.cluster.url, tenant.db_name)


_CONTEXT_FIELDS = ("id", "slug", "name", "status", "default_currency", "master_key_id",
                   "wrapped_data_key", "updated_at")
#: What :func:`lookup` reads: one row, tenant and server together.
_CONTEXT_SQL = """
SELECT t.id, t.slug, t.name, t.status, t.default_currency, t.db_name, t.master_key_id,
       t.wrapped_data_key, t.updated_at, c.url AS server_url
FROM tenants t JOIN db_clusters c ON c.id = t.cluster_id
WHERE t.{column} = $1
"""


def context_of(tenant: Tenant) -> TenantContext:
    return TenantContext(db_url=tenant_db_url(tenant),
                         **{name: getattr(tenant, name) for name in _CONTEXT_FIELDS})


# ----------------------------------------------------------------------------- clusters


async def ensure_default_cluster(session: AsyncSession, server_url: str) -> DbCluster:
    cluster = (await session.scalars(select(DbCluster).where(DbCluster.name == "default"))).first()
    if cluster is None:
        cluster = DbCluster(name="default", url=with_database(server_url, "postgres"))
        session.add(cluster)
        await session.flush()
    return cluster


async def add_cluster(session: AsyncSession, name: str, url: str, actor: Actor,
                      max_tenants: int | None = None) -> DbCluster:
    """Register a server once it has shown it can host tenants (422 otherwise)."""
    if (await session.scalars(select(DbCluster.id).where(DbCluster.name == name))).first():
        raise Conflict(f"cluster '{name}' already exists")
    if max_tenants is not None and max_tenants < 0:
        raise ValidationError("max_tenants must be 0 or more", param="max_tenants")
    await servers.check(url)
    cluster = DbCluster(name=name, url=url, max_tenants=max_tenants)
    session.add(cluster)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"cluster '{name}' already exists") from exc
    record(session, OwnerAuditLog, actor, "cluster.created", "db_cluster", cluster.id,
           {"name": name})
    return cluster


async def get_cluster(session: AsyncSession, name: str) -> DbCluster:
    cluster = (await session.scalars(select(DbCluster).where(DbCluster.name == name))).first()
    if cluster is None:
        raise NotFound(f"cluster '{name}' not found")
    return cluster


async def count_tenants(session: AsyncSession, cluster: DbCluster) -> int:
    return int(await session.scalar(
        select(func.count()).select_from(Tenant).where(Tenant.cluster_id == cluster.id)) or 0)


async def update_cluster(session: AsyncSession, name: str, actor: Actor, *,
                         is_active: bool | None = None, max_tenants: object = None,
                         set_max: bool = False) -> DbCluster:
    """Turn placement on this server off or on (on: only once it answers again)."""
    cluster = await get_cluster(session, name)
    changes: dict[str, object] = {}
    if is_active is not None and is_active != cluster.is_active:
        if is_active:
            await servers.check(cluster.url)
        changes["is_active"] = is_active
        cluster.is_active = is_active
    if set_max and max_tenants != cluster.max_tenants:
        if max_tenants is not None and (not isinstance(max_tenants, int) or max_tenants < 0):
            raise ValidationError("max_tenants must be 0 or more", param="max_tenants")
        changes["max_tenants"] = max_tenants
        cluster.max_tenants = max_tenants  # type: ignore[assignment]
    if changes:
        record(session, OwnerAuditLog, actor, "cluster.updated", "db_cluster", cluster.id,
               {"name": name, **changes})
        await session.flush()
    return cluster


async def delete_cluster(session: AsyncSession, name: str, actor: Actor) -> None:
    """Forget a server that hosts no tenant (409 otherwise)."""
    cluster = await get_cluster(session, name)
    if name == "default":
        raise Conflict("the default cluster (the owner database's server) cannot be "
                       "deleted; deactivate it instead", code="cluster_default")
    count = await count_tenants(session, cluster)
    if count:
        raise Conflict(f"cluster '{name}' still hosts {count} tenant(s)",
                       code="cluster_not_empty")
    record(session, OwnerAuditLog, actor, "cluster.deleted", "db_cluster", cluster.id,
           {"name": name})
    await session.delete(cluster)
    await session.flush()


async def pick_cluster(session: AsyncSession, name: str | None) -> DbCluster:
    """The named cluster, or the active one with the fewest tenants (room permitting)
    that answers (an unreachable server is skipped)."""
    if name:
        cluster = (await session.scalars(select(DbCluster).where(DbCluster.name == name))).first()
        if cluster is None or not cluster.is_active:
            raise ValidationError(f"unknown or inactive cluster '{name}'", param="cluster")
        if not await servers.is_up(cluster.url):
            raise servers.ServerUnfit(f"cluster '{name}' does not answer; try again later "
                                      "or choose another", code="cluster_unreachable",
                                      param="cluster")
        return cluster
    load = (
        select(DbCluster, func.count(Tenant.id).label("n"))
        .outerjoin(Tenant, Tenant.cluster_id == DbCluster.id)
        .where(DbCluster.is_active)
        .group_by(DbCluster.id)
        .order_by(func.count(Tenant.id), DbCluster.created_at)
    )
    roomy = [cluster for cluster, count in (await session.execute(load)).all()
             if cluster.max_tenants is None or count < cluster.max_tenants]
    if not roomy:
        raise Conflict("no database server has room for another tenant", code="no_capacity")
    # servers found down a moment ago are asked last, not never: being skipped is a
    # preference, so one refused connection cannot lock provisioning out for a while
    for cluster in sorted(roomy, key=lambda c: servers.recently_down(c.url)):
        if await servers.is_up(cluster.url):
            return cluster
        log.warning("cluster %s is unreachable; placing the tenant elsewhere", cluster.name)
    raise ServiceUnavailable(
        "no database server with room answers (unreachable: "
        f"{', '.join(c.name for c in roomy)}); retry later or register another server")


# ----------------------------------------------------------------------------- tenants


async def provision(
    runtime: Runtime,
    *,
    slug: str,
    name: str,
    default_currency: str,
    cluster: str | None,
    actor: Actor,
    db_name: str | None = None,
) -> tuple[Tenant, str]:
    """Create a tenant: reserve the slug, clone its database, issue its first admin key.

    The owner row is committed first in state ``provisioning`` (so the slug and database
    name are reserved by unique constraints), then the database is cloned, then the row
    turns ``active`` with the key. A failed clone removes the reservation. ``db_name``
    overrides the database name (default: from :mod:`owner.tenants.naming`).
    """
    if not isinstance(slug, str) or not SLUG.match(slug):
        raise ValidationError(
            "slug must be 3-40 chars of lowercase letters, digits and '-'", param="slug"
        )
    if not name or not name.strip():
        raise ValidationError("name is required", param="name")
    currency = normalize_currency(default_currency, param="default_currency")
    settings = runtime.settings
    tenant_id = uuid.uuid4()
    async with runtime.owner_session() as session:
        names = await database_names(session, settings)
        target = await pick_cluster(session, cluster)
        wrapped = runtime.keyring.new_data_key(tenant_id=str(tenant_id))
        tenant = Tenant(
            id=tenant_id,
            slug=slug,
            name=name.strip(),
            default_currency=currency,
            status="provisioning",
            cluster_id=target.id,
            db_name=db_name or names.tenant_db(slug),
            master_key_id=wrapped.master_key_id,
            wrapped_data_key=wrapped.blob,
        )
        session.add(tenant)
        try:
            await session.flush()
        except IntegrityError as exc:
            if (await _taken(runtime, slug)):
                raise Conflict(f"tenant '{slug}' already exists", param="slug",
                               code="tenant_exists") from exc
            raise Conflict(f"database name '{tenant.db_name}' is used by another tenant",
                           param="slug", code="database_name_taken") from exc
        server_url = target.url
    try:
        await templates.ensure_template(server_url, names.template)
        await templates.clone(server_url, names.template, tenant.db_name)
    except BaseException as exc:
        if isinstance(exc, Conflict):
            log.warning("tenant %s not provisioned: %s", slug, exc.message)
        else:
            log.exception("provisioning of tenant %s failed; removing its reservation", slug)
        async with runtime.owner_session() as session:
            row = await session.get(Tenant, tenant_id)
            if row is not None:
                await session.delete(row)
        raise
    async with runtime.owner_session() as session:
        tenant = await session.get_one(Tenant, tenant_id)
        tenant.status = "active"
        _, raw_key = await keys.issue(session, kind="tenant", tenant_id=tenant_id,
                                      name="admin", actor=actor)
        record(session, OwnerAuditLog, actor, "tenant.created", "tenant", tenant_id,
               {"slug": slug, "cluster": target.name, "db_name": tenant.db_name})
    return tenant, raw_key


async def _taken(runtime: Runtime, slug: str) -> bool:
    async with runtime.owner_session() as session:
        return bool((await session.scalars(select(Tenant.id).where(Tenant.slug == slug))).first())


async def get_by_slug(session: AsyncSession, slug: str) -> Tenant:
    tenant = (await session.scalars(select(Tenant).where(Tenant.slug == slug))).first()
    if tenant is None:
        raise NotFound(f"tenant '{slug}' not found")
    return tenant


async def set_status(session: AsyncSession, slug: str, status: str, actor: Actor) -> Tenant:
    if status not in ("active", "suspended"):
        raise ValidationError("status must be 'active' or 'suspended'", param="status")
    tenant = await get_by_slug(session, slug)
    if tenant.status == "provisioning":
        raise Conflict("tenant is still being provisioned")
    if tenant.status != status:
        record(session, OwnerAuditLog, actor, f"tenant.{status}", "tenant", tenant.id,
               {"from": tenant.status, "to": status})
        tenant.status = status
    after_commit(session, _contexts.clear)
    return tenant


async def lookup(runtime: Runtime, *, slug: str | None = None,
                 tenant_id: uuid.UUID | None = None) -> TenantContext | None:
    """Tenant context by slug or id, cached for a few seconds per process."""
    key = ("slug", slug) if slug is not None else ("id", tenant_id)

    async def load() -> TenantContext | bool:
        # plain SQL, no transaction: every request over many tenants comes here often
        async with runtime.owner_engine.connect() as conn:
            row = await (await autocommit_sql(conn)).fetchrow(
                _CONTEXT_SQL.format(column=key[0]), key[1])
        if row is None or row["status"] == "provisioning":
            return False  # misses are cached too
        return TenantContext(db_url=with_database(row["server_url"], row["db_name"]),
                             **{name: row[name] for name in _CONTEXT_FIELDS})

    return await _contexts.get_or_load(key, load) or None


def forget_cached_tenants() -> None:
    _contexts.clear()


def forget_tenants(changed: Iterable[tuple[uuid.UUID, str, datetime]]) -> None:
    """Drop cached copies older than these changes (id, slug, ``updated_at``) and cached
    misses of these tenants."""
    for tenant_id, slug, updated_at in changed:
        for key in (("id", tenant_id), ("slug", slug)):
            cached = _contexts.get(key)
            if not isinstance(cached, TenantContext) or cached.updated_at is None \
                    or cached.updated_at < updated_at:
                _contexts.pop(key)


def cache_seconds(seconds: float | None) -> None:
    """How long lookups are cached from now on (None: :data:`CACHE_SECONDS`)."""
    _contexts.ttl = seconds or CACHE_SECONDS


async def all_tenants(session: AsyncSession) -> list[Tenant]:
    return list((await session.scalars(select(Tenant).order_by(Tenant.created_at))).all())
