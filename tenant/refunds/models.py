from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import IdMixin, TenantBase, TimestampMixin
from tenant.payments import models as _payments  # noqa: F401 - registers the FK targets
from tenant.refunds.states import RefundStatus


class Refund(IdMixin, TimestampMixin, TenantBase):
    """Money given back on a captured payment (SPEC 3a). Its ``status`` moves through
    :data:`tenant.refunds.states.REFUND_STATUS`. A provider's refund id is unique per
    provider (none for a manual refund)."""

    __tablename__ = "refunds"

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"), index=True)
    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments.id"))
    provider: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str | None] = mapped_column(String(500))
    keep_access: Mapped[bool] = mapped_column(Boolean, default=False,
                                              server_default=text("false"))
    restock: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    provider_refund_id: Mapped[str | None] = mapped_column(String(255))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The items it returns, ``[{"order_item_id", "quantity"}]`` (restocked on success).
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list,
                                                        server_default=text("'[]'::jsonb"))

    __table_args__ = (
        UniqueConstraint("provider", "provider_refund_id"),
        Index("ix_refunds_created_at", "created_at"),
        # by payment, under the order lock (migration 0010)
        Index("ix_refunds_payment_id", "payment_id", "status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("status IN (" + ", ".join(f"'{s.value}'" for s in RefundStatus) + ")",
                        name="status_valid"),
    )
