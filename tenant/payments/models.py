from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy import Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import IdMixin, TenantBase, TimestampMixin
from tenant.orders import models as _orders  # noqa: F401 - registers the FK target


class PaymentAttemptStatus(StrEnum):
    PENDING = "pending"  # created at the provider, waiting for the customer
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # declined, or the provider was unavailable at create time
    SUPERSEDED = "superseded"  # a newer attempt replaced it before it was paid
    CANCELLED = "cancelled"  # the order was cancelled, or the customer gave up
    NEEDS_REVIEW = "needs_review"  # money moved but could not be applied (see ``flags``)


#: Attempts that may still turn into money.
LIVE_STATUSES = (PaymentAttemptStatus.PENDING, PaymentAttemptStatus.REQUIRES_ACTION,
                 PaymentAttemptStatus.PROCESSING)


class Payment(IdMixin, TimestampMixin, TenantBase):
    """One attempt to collect an order's total through one provider.

    ``idempotency_key`` is what the provider received (derived from tenant, order and
    attempt number), so a retried create can never make a second provider payment. At
    most one attempt per order can be ``succeeded`` (a partial unique index): the
    database itself refuses a second successful charge being recorded as such.
    """

    __tablename__ = "payments"

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"), index=True)
    attempt_number: Mapped[int] = mapped_column(Integer)
    provider: Mapped[str] = mapped_column(String(32))
    provider_payment_id: Mapped[str | None] = mapped_column(String(255))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(24))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    fee_amount: Mapped[int | None] = mapped_column(BigInteger)
    redirect_url: Mapped[str | None] = mapped_column(Text)
    client_secret: Mapped[str | None] = mapped_column(Text)
    instructions: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(Text)
    flags: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    succeeded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("provider", "provider_payment_id"),
        UniqueConstraint("order_id", "attempt_number"),
        Index("uq_payments_one_success_per_order", "order_id", unique=True,
              postgresql_where=text("status = 'succeeded'")),
        Index("ix_payments_created_at", "created_at"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("fee_amount IS NULL OR fee_amount >= 0", name="fee_nonneg"),
        CheckConstraint(
            "status IN ('pending', 'requires_action', 'processing', 'succeeded', 'failed', "
            "'superseded', 'cancelled', 'needs_review')", name="status_valid"),
    )
