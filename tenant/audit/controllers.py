from __future__ import annotations

from datetime import datetime

from litestar import Controller, get
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import fetch_page
from core.http import page_params
from tenant.audit.models import AuditLog


class AuditController(Controller):
    path = "/v1/audit-log"
    tags = ["tenant: audit"]

    @get("/")
    async def list_entries(
        self, tenant_db: AsyncSession, entity_type: str | None = None,
        entity_id: str | None = None, action: str | None = None,
        created_from: datetime | None = None, created_to: datetime | None = None,
        page: int = 1, limit: int = 50,
    ) -> dict:
        page, limit = page_params(page, limit)
        query = select(AuditLog).order_by(AuditLog.created_at.desc(), AuditLog.id)
        if entity_type:
            query = query.where(AuditLog.entity_type == entity_type)
        if entity_id:
            query = query.where(AuditLog.entity_id == entity_id)
        if action:
            query = query.where(AuditLog.action == action)
        if created_from:
            query = query.where(AuditLog.created_at >= created_from)
        if created_to:
            query = query.where(AuditLog.created_at < created_to)
        rows, more = await fetch_page(tenant_db, query, page, limit)
        data = [
            {"id": str(r.id), "created_at": r.created_at, "actor_key_id":
             str(r.actor_key_id) if r.actor_key_id else None, "actor_kind": r.actor_kind,
             "action": r.action, "entity_type": r.entity_type, "entity_id": r.entity_id,
             "data": r.data, "ip": r.ip, "user_agent": r.user_agent}
            for r in rows
        ]
        return {"data": data, "page": page, "limit": limit, "has_more": more}
