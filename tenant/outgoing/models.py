"""Endpoints, the events outbox and one delivery row per attempt (SPEC 3a)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import IdMixin, TenantBase, TimestampMixin


class WebhookEndpoint(IdMixin, TimestampMixin, TenantBase):
    """A URL of the tenant's own systems and the events it wants (empty: all)."""

    __tablename__ = "webhook_endpoints"

    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(ARRAY(String(40)), default=list)
    description: Mapped[str | None] = mapped_column(String(500))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Why it was disabled by Paymesh (``gone`` on a 410, ``failing`` after days of
    #: failures); None when enabled or disabled by the tenant.
    disabled_reason: Mapped[str | None] = mapped_column(String(40))
    #: The signing secret (Standard Webhooks), encrypted with the tenant's data key.
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    #: The secret before the last rotation, still signing until ``previous_expires_at``.
    previous_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The first failed delivery since the last success (five days of them disable it).
    first_failure_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OutgoingEvent(TenantBase):
    """The outbox: written in the transaction of the change it tells about."""

    __tablename__ = "outgoing_events"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    type: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    #: One event per business fact (``order.paid:<order id>``): a replayed movement
    #: writes nothing new.
    dedupe_key: Mapped[str] = mapped_column(String(120))

    __table_args__ = (UniqueConstraint("dedupe_key"),
                      Index("ix_outgoing_events_created_at", "created_at"))


class OutgoingDelivery(IdMixin, TenantBase):
    """One attempt to deliver one event to one endpoint (the delivery log)."""

    __tablename__ = "outgoing_deliveries"

    event_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("outgoing_events.id", ondelete="CASCADE"))
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    response_status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    #: Why it failed without an HTTP answer (timeout, refused address …).
    error: Mapped[str | None] = mapped_column(Text)
    #: When a pending attempt is due (the scheduler sends overdue ones again).
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: A worker is sending it until then (claimed outside a held transaction).
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: A manual redelivery: no retries follow it.
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id", "attempt"),
        CheckConstraint("status IN ('pending', 'succeeded', 'failed', 'exhausted')",
                        name="status_valid"),
        Index("ix_outgoing_deliveries_endpoint", "endpoint_id", "created_at"),
        Index("ix_outgoing_deliveries_due", "next_attempt_at",
              postgresql_where="status = 'pending'"),
    )
