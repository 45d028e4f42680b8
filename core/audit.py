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
from core.sql import json_param


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
    """The column values of one audit row: what :func:`record` adds to a session and
    :func:`insert_sql` writes in a set-based statement."""
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


#: The ``audit_log`` columns, in the order of :func:`insert_sql`'s parameters.
AUDIT_COLUMNS = ("id", "created_at", "actor_key_id", "actor_kind", "action", "entity_type",
                 "entity_id", "data", "ip", "user_agent")
_TYPES = ("uuid", "timestamptz", "uuid", "text", "text", "text", "text", "text", "text",
          "text")


def insert_sql(first: int, *, name: str = "audit", entity_id: str = "a.entity_id",
               data: str = "CAST(a.data AS jsonb)", join: str | None = None) -> str:
    """The ONE hand-written ``INSERT INTO audit_log``: a CTE ``name AS (...)`` writing any
    number of :func:`audit_row` rows, given as the arrays of :func:`columns` in parameters
    ``$first`` to ``$first + 9``, for set-based statements that audit what they change.

    ``entity_id``/``data`` replace the row's own values by SQL expressions over ``a`` (the
    row) and ``join`` (a CTE of the same statement, cross-joined), for what only the
    statement knows: the id of an upserted row, a number it drew.
    """
    arrays = ", ".join(f"${first + i}::{t}[]" for i, t in enumerate(_TYPES))
    names = ", ".join(AUDIT_COLUMNS)
    values = ", ".join(
        entity_id if c == "entity_id" else data if c == "data" else f"a.{c}"
        for c in AUDIT_COLUMNS)
    source = f"unnest({arrays}) AS a({names})" + (f", {join}" if join else "")
    return (f"{name} AS (INSERT INTO audit_log ({names}) "
            f"SELECT {values} FROM {source})")


def columns(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """:func:`audit_row` rows as the ten column arrays :func:`insert_sql` takes."""
    return [[json_param(r[c]) if c == "data" else r[c] for r in rows]
            for c in AUDIT_COLUMNS]


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
