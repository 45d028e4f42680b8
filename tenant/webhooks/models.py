from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Index, Integer, LargeBinary, String, Text
from sqlalchemy import UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import IdMixin, TenantBase, utcnow


class EventStatus(StrEnum):
    RECEIVED = "received"  # stored and acknowledged, waiting for a worker
    PROCESSED = "processed"  # effects applied (or nothing to apply)
    FAILED = "failed"  # last attempt failed; will be retried at next_attempt_at
    DEAD = "dead"  # gave up after PAYMESH_WEBHOOK_MAX_ATTEMPTS; visible, replayable


class WebhookEvent(IdMixin, TenantBase):
    """The inbox: one row per provider event, stored raw before the 200 (T9)."""

    __tablename__ = "webhook_events"

    provider: Mapped[str] = mapped_column(String(32))
    provider_event_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default=EventStatus.RECEIVED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    #: The verified event, normalized (what the worker applies).
    normalized: Mapped[dict[str, Any]] = mapped_column(JSONB)
    last_error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("provider", "provider_event_id"),
        CheckConstraint("status IN ('received', 'processed', 'failed', 'dead')",
                        name="status_valid"),
        Index("ix_webhook_events_pending", "status", "received_at",
              postgresql_where=text("status IN ('received', 'failed')")),
    )
