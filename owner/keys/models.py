from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from core.db import IdMixin, OwnerBase, TimestampMixin


class ApiKey(IdMixin, TimestampMixin, OwnerBase):
    """An API key, stored only as a SHA-256 hash; ``prefix`` is the visible part."""

    __tablename__ = "api_keys"

    kind: Mapped[str] = mapped_column(String(8))  # owner | tenant
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100), default="")
    prefix: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("kind IN ('owner', 'tenant')", name="kind_valid"),
        CheckConstraint("(kind = 'owner') = (tenant_id IS NULL)", name="tenant_matches_kind"),
    )
