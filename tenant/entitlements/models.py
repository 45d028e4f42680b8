from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import IdMixin, TenantBase, TimestampMixin
from core.limits import EMAIL_LEN
from tenant.entitlements.states import EntitlementStatus
from tenant.orders import models as _orders  # noqa: F401 - registers the FK targets
from tenant.products import models as _products  # noqa: F401


class Entitlement(IdMixin, TimestampMixin, TenantBase):
    """One unit of a paid digital product: access with an unguessable ``license_key``.

    Unique per ``(order_item_id, unit)`` (``unit`` counts 1..quantity), so granting an
    order again (a redelivered capture) adds nothing. ``status`` moves through
    :data:`tenant.entitlements.states.ENTITLEMENT_STATUS`."""

    __tablename__ = "entitlements"

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"), index=True)
    order_item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("order_items.id"))
    unit: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id"))
    customer_email: Mapped[str] = mapped_column(String(EMAIL_LEN))
    status: Mapped[str] = mapped_column(String(16))
    license_key: Mapped[str] = mapped_column(String(80), unique=True)
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("order_item_id", "unit"),
        Index("ix_entitlements_created_at", "created_at"),
        Index("ix_entitlements_customer_email", func.lower(customer_email)),
        CheckConstraint("unit >= 1", name="unit_positive"),
        CheckConstraint("status IN (" + ", ".join(f"'{s.value}'" for s in EntitlementStatus)
                        + ")", name="status_valid"),
    )
