from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, DateTime, Index, Integer, LargeBinary, String, Text
from sqlalchemy import Uuid, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import IdMixin, TenantBase, TimestampMixin


class ProviderConfigRow(IdMixin, TimestampMixin, TenantBase):
    """One provider as this tenant configured it (T1). Secrets only as ciphertext."""

    __tablename__ = "provider_configs"

    provider_code: Mapped[str] = mapped_column(String(32), unique=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    environment: Mapped[str] = mapped_column(String(16), default="sandbox")
    public_key_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    secret_key_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    webhook_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: Masked hints shown instead of the keys (``sk_…1234``).
    hints: Mapped[dict[str, str | None]] = mapped_column(JSONB, default=dict)
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    currencies: Mapped[list[str]] = mapped_column(JSONB, default=list)
    priority: Mapped[int] = mapped_column(Integer, default=100)
    configured_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    last_tested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_test_ok: Mapped[bool | None] = mapped_column(Boolean)
    last_test_message: Mapped[str | None] = mapped_column(Text)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("environment IN ('sandbox', 'production')", name="environment_valid"),
        Index(
            "uq_provider_configs_one_default",
            "is_default",
            unique=True,
            postgresql_where=text("is_default"),
        ),
    )
