from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import IdMixin, TenantBase, TimestampMixin
from tenant.disputes.states import DisputeStatus
from tenant.payments import models as _payments  # noqa: F401 - registers the FK targets


class Dispute(IdMixin, TimestampMixin, TenantBase):
    """A chargeback a provider reported (SPEC 3a); ``status`` moves through
    :data:`tenant.disputes.states.DISPUTE_STATUS`. ``order_status_before`` is where a won
    dispute returns the order (not shown by the API)."""

    __tablename__ = "disputes"

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"), index=True)
    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments.id"))
    provider: Mapped[str] = mapped_column(String(32))
    provider_dispute_id: Mapped[str] = mapped_column(String(255))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    order_status_before: Mapped[str | None] = mapped_column(String(32))
    evidence_due_by: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("provider", "provider_dispute_id"),
        Index("ix_disputes_created_at", "created_at"),
        # by payment, under the order lock (migration 0010)
        Index("ix_disputes_payment_id", "payment_id", "status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("status IN (" + ", ".join(f"'{s.value}'" for s in DisputeStatus) + ")",
                        name="status_valid"),
    )
