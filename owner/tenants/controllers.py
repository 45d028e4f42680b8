from __future__ import annotations

import msgspec
from litestar import Controller, delete, get, patch, post
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor, record
from core.db import fetch_page, redact
from core.errors import ValidationError
from core.http import page_params
from core.runtime import Runtime
from owner.audit.models import OwnerAuditLog
from owner.tenants import service
from owner.tenants.models import DbCluster, Tenant
from owner.tenants.schemas import (
    ClusterIn,
    ClusterOut,
    ClusterPatch,
    TenantCreated,
    TenantIn,
    TenantOut,
    TenantPatch,
)


def tenant_out(tenant: Tenant) -> TenantOut:
    return TenantOut(
        id=str(tenant.id), slug=tenant.slug, name=tenant.name,
        default_currency=tenant.default_currency, status=tenant.status,
        cluster=tenant.cluster.name, created_at=tenant.created_at,
    )


class TenantController(Controller):
    path = "/v1/owner/tenants"
    tags = ["owner: tenants"]

    @get("/")
    async def list_tenants(self, owner_db: AsyncSession, page: int = 1, limit: int = 50,
                           status: str | None = None) -> dict:
        page, limit = page_params(page, limit)
        query = select(Tenant).order_by(Tenant.created_at, Tenant.slug)
        if status:
            query = query.where(Tenant.status == status)
        rows, more = await fetch_page(owner_db, query, page, limit)
        return {"data": [tenant_out(t) for t in rows], "page": page, "limit": limit,
                "has_more": more}

    @post("/")
    async def create_tenant(self, runtime: Runtime, actor: Actor, data: TenantIn) -> TenantCreated:
        tenant, raw_key = await service.provision(
            runtime, slug=data.slug, name=data.name, default_currency=data.default_currency,
            cluster=data.cluster, actor=actor,
        )
        async with runtime.owner_session() as session:
            fresh = await session.get_one(Tenant, tenant.id)
            return TenantCreated(tenant=tenant_out(fresh), api_key=raw_key)

    @get("/{slug:str}")
    async def get_tenant(self, owner_db: AsyncSession, slug: str) -> TenantOut:
        return tenant_out(await service.get_by_slug(owner_db, slug))

    @patch("/{slug:str}")
    async def update_tenant(self, owner_db: AsyncSession, actor: Actor, slug: str,
                            data: TenantPatch) -> TenantOut:
        tenant = await service.get_by_slug(owner_db, slug)
        if data.name is not msgspec.UNSET:
            if not data.name.strip():
                raise ValidationError("name must not be empty", param="name")
            record(owner_db, OwnerAuditLog, actor, "tenant.renamed", "tenant", tenant.id,
                   {"from": tenant.name, "to": data.name})
            tenant.name = data.name.strip()
        if data.status is not msgspec.UNSET:
            tenant = await service.set_status(owner_db, slug, data.status, actor)
        return tenant_out(tenant)


class ClusterController(Controller):
    """Database servers for tenant databases (an extension of the spec's contract)."""

    path = "/v1/owner/clusters"
    tags = ["owner: tenants"]

    @get("/")
    async def list_clusters(self, owner_db: AsyncSession) -> dict:
        counts = dict((await owner_db.execute(
            select(Tenant.cluster_id, func.count()).group_by(Tenant.cluster_id))).all())
        rows = (await owner_db.scalars(select(DbCluster).order_by(DbCluster.created_at))).all()
        return {"data": [_cluster_out(c, counts.get(c.id, 0)) for c in rows]}

    @post("/")
    async def create_cluster(self, owner_db: AsyncSession, actor: Actor,
                             data: ClusterIn) -> ClusterOut:
        if not data.url.startswith(("postgresql://", "postgres://")):
            raise ValidationError("url must be a postgresql:// URL", param="url")
        if not data.name.strip():
            raise ValidationError("name is required", param="name")
        cluster = await service.add_cluster(owner_db, data.name.strip(), data.url, actor,
                                            data.max_tenants)
        return _cluster_out(cluster, 0)

    @patch("/{name:str}")
    async def update_cluster(self, owner_db: AsyncSession, actor: Actor, name: str,
                             data: ClusterPatch) -> ClusterOut:
        """``active`` (or ``is_active``) ``false`` stops placing tenants there (its tenants
        stay served); ``true`` checks the server again first."""
        cluster = await service.update_cluster(
            owner_db, name, actor, is_active=data.switch(),
            max_tenants=None if data.max_tenants is msgspec.UNSET else data.max_tenants,
            set_max=data.max_tenants is not msgspec.UNSET)
        return _cluster_out(cluster, await service.count_tenants(owner_db, cluster))

    @delete("/{name:str}")
    async def delete_cluster(self, owner_db: AsyncSession, actor: Actor, name: str) -> None:
        """Only a cluster that hosts no tenant (409 otherwise)."""
        await service.delete_cluster(owner_db, name, actor)


def _cluster_out(cluster: DbCluster, count: int) -> ClusterOut:
    return ClusterOut(id=str(cluster.id), name=cluster.name, url=redact(cluster.url),
                      is_active=cluster.is_active, max_tenants=cluster.max_tenants,
                      tenant_count=count)
