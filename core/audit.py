"""Audit trail: who did what to which entity, written in the caller's transaction.

Both databases have an ``audit_log`` table of the same shape (owner actions in the owner
database, tenant actions in the tenant's own). :func:`record` adds the row to the
session the business change uses, so the change and its audit row commit together.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, String, Uuid, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from core.db import utcnow


@dataclass(frozen=True)
class Actor:
    """Who is acting: an API key (or the system), from where."""

    key_id: uuid.UUID | None = None
    kind: str = "system"  # owner | tenant | system | public
    ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls(kind="system", user_agent=name)


SYSTEM = Actor.system()


class AuditLogMixin:
    """Columns shared by the owner and tenant ``audit_log`` tables."""

    __tablename__ = "audit_log"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now(), index=True
    )
    actor_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    actor_kind: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(256), nullable=True)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:  # noqa: N805
        from sqlalchemy import Index

        return (Index("ix_audit_log_entity", "entity_type", "entity_id", "created_at"),)


def audit_row(actor: Actor, action: str, entity_type: str, entity_id: object,
              data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The column values of one audit row (for a Core ``INSERT`` on a hot path)."""
    return {
        "id": uuid.uuid4(),
        "created_at": utcnow(),
        "actor_key_id": actor.key_id,
        "actor_kind": actor.kind,
        "action": action,
        "entity_type": entity_type,
        "entity_id": str(entity_id),
        "data": data or {},
        "ip": actor.ip,
        "user_agent": (actor.user_agent or "")[:256] or None,
    }


def record(
    session: AsyncSession,
    model: type[AuditLogMixin],
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: object,
    data: dict[str, Any] | None = None,
) -> None:
    row = audit_row(actor, action, entity_type, entity_id, data)
    del row["id"], row["created_at"]  # the model's defaults, taken at flush time
    session.add(model(**row))  # type: ignore[call-arg]
